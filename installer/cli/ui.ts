import { Option, type Command } from "commander";
import { openState, type State } from "../state/index.js";
import type * as UiModule from "../../ui-lite/index.js";
import type { ConsoleUser } from "../../ui-lite/index.js";
import type { CommandContext, Runner } from "./context.js";
import { emit } from "./output.js";

/** Loaded when a ui command runs: express costs every other command's start-up otherwise. */
export const loadUi = (): Promise<typeof UiModule> => import("../../ui-lite/index.js");

async function withUsers<T>(
  context: CommandContext,
  fn: (users: UiModule.UserRecords) => T | Promise<T>,
): Promise<T> {
  const { UserRecords } = await loadUi();
  const state: State = openState(context.dataDir, { actor: "cli" });
  try {
    return await fn(new UserRecords(state));
  } finally {
    state.close();
  }
}

function oneTimeText(name: string, password: string, verb: string): string {
  return [
    `${verb} console user ${name}; one-time password: ${password}`,
    "  it opens only the password form: the user chooses their own at first sign-in",
  ].join("\n");
}

function userLine(user: ConsoleUser): string {
  const pending = user.mustChangePassword ? "  (one-time password not changed yet)" : "";
  return `${user.name.padEnd(20)} ${user.role.padEnd(7)} ${user.createdAt.slice(0, 10)}${pending}`;
}

export function registerUi(program: Command, run: Runner): void {
  const user = program
    .command("ui")
    .description("the web console")
    .command("user")
    .description("the console's local users: admins change things, viewers look");

  user
    .command("add <name>")
    .description("add a user and print a one-time password, which must be changed at first sign-in")
    .addOption(
      new Option("--role <role>", "what the user may do").choices(["admin", "viewer"]).makeOptionMandatory(),
    )
    .action(async (name: string, flags: { role: "admin" | "viewer" }, command: Command) =>
      run(command, (context) =>
        withUsers(context, async (users) => {
          const added = await users.add(name, flags.role);
          emit(context.output, added, () => oneTimeText(name, added.password, `added ${flags.role}`));
        }),
      ),
    );

  user
    .command("ls")
    .description("list the users, their roles, and who still has a one-time password")
    .action(async (_flags: object, command: Command) =>
      run(command, (context) =>
        withUsers(context, (users) => {
          const list = users.list();
          emit(context.output, { users: list }, () =>
            list.length === 0
              ? "no console users: `airlock ui user add NAME --role admin` adds one"
              : [`${"NAME".padEnd(20)} ${"ROLE".padEnd(7)} CREATED`, ...list.map(userLine)].join("\n"),
          );
        }),
      ),
    );

  user
    .command("rm <name>")
    .description("remove a user and end their sessions (the last admin stays)")
    .action(async (name: string, _flags: object, command: Command) =>
      run(command, (context) =>
        withUsers(context, (users) => {
          users.remove(name);
          emit(context.output, { removed: name }, () => `removed console user ${name}`);
        }),
      ),
    );

  user
    .command("reset-password <name>")
    .description("give a user a new one-time password, ending their sessions")
    .action(async (name: string, _flags: object, command: Command) =>
      run(command, (context) =>
        withUsers(context, async (users) => {
          const password = await users.resetPassword(name);
          emit(context.output, { name, password }, () => oneTimeText(name, password, "reset"));
        }),
      ),
    );
}
