import type { State } from "../installer/state/index.js";
import { AirlockError } from "../registry/oci/index.js";
import {
  checkNewPassword,
  hashPassword,
  oneTimePassword,
  UNMATCHABLE_HASH,
  verifyPassword,
} from "./passwords.js";
import { migrateUi } from "./schema.js";

export type Role = "admin" | "viewer";
export const ROLES: readonly Role[] = ["admin", "viewer"];

export interface ConsoleUser {
  id: number;
  name: string;
  role: Role;
  /** Signed in with a one-time password: only the password form is open until it is changed. */
  mustChangePassword: boolean;
  createdAt: string;
  passwordChangedAt: string;
}

interface UserRow {
  id: number;
  name: string;
  role: Role;
  password_hash: string;
  must_change: number;
  created_at: string;
  password_changed_at: string;
}

const USER_NAME = /^[a-z][a-z0-9._-]{0,63}$/;

function toUser(row: UserRow): ConsoleUser {
  return {
    id: row.id,
    name: row.name,
    role: row.role,
    mustChangePassword: row.must_change === 1,
    createdAt: row.created_at,
    passwordChangedAt: row.password_changed_at,
  };
}

function noSuchUser(name: string): AirlockError {
  return new AirlockError("UI_USER_NOT_FOUND", `there is no console user ${JSON.stringify(name)}`, {
    hint: "`airlock ui user ls` lists them",
  });
}

export function checkUserName(name: string): string {
  if (!USER_NAME.test(name)) {
    throw new AirlockError("USAGE", `${JSON.stringify(name)} is not a user name`, {
      hint: "a lower-case letter, then up to 63 of a-z, 0-9, '.', '_', '-'",
    });
  }
  return name;
}

export function checkRole(role: string): Role {
  if (!(ROLES as readonly string[]).includes(role)) {
    throw new AirlockError("USAGE", `${JSON.stringify(role)} is not a role`, {
      hint: "--role admin or --role viewer",
    });
  }
  return role as Role;
}

/**
 * The console's local users in `airlock.db` (the `ui` migration track), each change in the event log.
 * The CLI (`airlock ui user …`) and the console call these same functions.
 */
export class UserRecords {
  constructor(
    private readonly state: State,
    private readonly clock: () => Date = () => new Date(),
  ) {
    migrateUi(state.db);
  }

  private row(name: string): UserRow | undefined {
    return this.state.db.prepare("SELECT * FROM ui_users WHERE name = ?").get(name) as UserRow | undefined;
  }

  get(name: string): ConsoleUser | undefined {
    const row = this.row(name);
    return row === undefined ? undefined : toUser(row);
  }

  byId(id: number): ConsoleUser | undefined {
    const row = this.state.db.prepare("SELECT * FROM ui_users WHERE id = ?").get(id) as UserRow | undefined;
    return row === undefined ? undefined : toUser(row);
  }

  list(): ConsoleUser[] {
    const rows = this.state.db.prepare("SELECT * FROM ui_users ORDER BY name").all() as UserRow[];
    return rows.map(toUser);
  }

  /** A new user with a one-time password, returned once and stored only as its scrypt hash. */
  async add(name: string, role: Role, actor?: string): Promise<{ user: ConsoleUser; password: string }> {
    checkUserName(name);
    checkRole(role);
    const password = oneTimePassword();
    const hash = await hashPassword(password);
    const now = this.clock().toISOString();
    this.state.transaction(() => {
      if (this.row(name) !== undefined) {
        throw new AirlockError("UI_USER_EXISTS", `console user ${JSON.stringify(name)} exists already`, {
          hint: "`airlock ui user reset-password NAME` gives it a new one-time password",
        });
      }
      this.state.db
        .prepare(
          "INSERT INTO ui_users (name, role, password_hash, must_change, created_at, password_changed_at) VALUES (?, ?, ?, 1, ?, ?)",
        )
        .run(name, role, hash, now, now);
      this.state.events.append({
        actor,
        action: "ui.user.add",
        object: `ui/user/${name}`,
        outcome: "ok",
        detail: { role },
      });
    });
    return { user: this.get(name)!, password };
  }

  /** Removes a user and its sessions; the last admin stays, so the console is never locked out. */
  remove(name: string, actor?: string): void {
    this.state.transaction(() => {
      const row = this.row(name);
      if (row === undefined) throw noSuchUser(name);
      const admins = this.state.db
        .prepare("SELECT count(*) AS n FROM ui_users WHERE role = 'admin'")
        .get() as {
        n: number;
      };
      if (row.role === "admin" && admins.n === 1) {
        throw new AirlockError("UI_LAST_ADMIN", `${JSON.stringify(name)} is the only admin`, {
          hint: "add another admin first: `airlock ui user add NAME --role admin`",
        });
      }
      this.state.db.prepare("DELETE FROM ui_users WHERE id = ?").run(row.id);
      this.state.events.append({ actor, action: "ui.user.rm", object: `ui/user/${name}`, outcome: "ok" });
    });
  }

  /** A new one-time password, ending every session of the user. */
  async resetPassword(name: string, actor?: string): Promise<string> {
    if (this.row(name) === undefined) throw noSuchUser(name);
    const password = oneTimePassword();
    await this.storePassword(name, password, true, actor, "ui.user.reset-password");
    return password;
  }

  /** The user's password if it matches, else undefined; an unknown name costs the same scrypt. */
  async authenticate(name: string, password: string): Promise<ConsoleUser | undefined> {
    const row = this.row(name);
    const matches = await verifyPassword(password, row?.password_hash ?? UNMATCHABLE_HASH);
    return row !== undefined && matches ? toUser(row) : undefined;
  }

  /** The user's own change: the current password must match and the new one differ and be long enough. */
  async changePassword(name: string, current: string, next: string): Promise<void> {
    if ((await this.authenticate(name, current)) === undefined) {
      throw new AirlockError("UI_PASSWORD_WRONG", "the current password is wrong", {
        hint: "type the password you signed in with",
      });
    }
    checkNewPassword(next);
    if (next === current) {
      throw new AirlockError("UI_PASSWORD_WEAK", "the new password is the current one", {
        hint: "choose a password you have not used here",
      });
    }
    await this.storePassword(name, next, false, name, "ui.user.change-password");
  }

  private async storePassword(
    name: string,
    password: string,
    oneTime: boolean,
    actor: string | undefined,
    action: string,
  ): Promise<void> {
    const hash = await hashPassword(password);
    this.state.transaction(() => {
      const row = this.row(name);
      if (row === undefined) throw noSuchUser(name);
      this.state.db
        .prepare(
          "UPDATE ui_users SET password_hash = ?, must_change = ?, password_changed_at = ? WHERE id = ?",
        )
        .run(hash, oneTime ? 1 : 0, this.clock().toISOString(), row.id);
      // A reset ends every session; a user's own change keeps none but the one it is about to get.
      this.state.db.prepare("DELETE FROM ui_sessions WHERE user_id = ?").run(row.id);
      this.state.events.append({ actor, action, object: `ui/user/${name}`, outcome: "ok" });
    });
  }
}
