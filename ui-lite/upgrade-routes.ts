import type { Request, Response, Router } from "express";
import {
  cancelUpgrade,
  releasesToSwap,
  planUpgrade,
  scheduleUpgrade,
  type ScheduleRequest,
} from "../installer/upgrade/index.js";
import { AirlockError } from "../registry/oci/index.js";
import type { ConsoleLogger } from "./app.js";
import { sessionOf } from "./auth.js";
import type { ConsoleContext } from "./context.js";
import { httpStatusOf } from "./error-status.js";
import type { SafeHtml } from "./html.js";
import { page } from "./layout.js";
import { badParameter, queryText } from "./params.js";
import { renderPlan, type PlanPageProblem } from "./pages/upgrade-plan.js";
import { renderRollbackConfirmation } from "./pages/upgrade-rollback.js";
import { renderRun } from "./pages/upgrade-runs.js";
import { readScheduleForm, scheduleErrorOf } from "./pages/upgrade-schedule.js";
import { renderUpgrades } from "./pages/upgrades.js";
import { RunLiveStreams, type LiveLimits } from "./run-live.js";
import {
  asActor,
  pathId,
  planIsStale,
  plannableVersions,
  requireDaemon,
  staleError,
} from "./upgrade-facts.js";

const SECTION = "/upgrades";

function send(response: Response, title: string, body: SafeHtml, status = 200): void {
  response
    .status(status)
    .type("html")
    .send(page({ title, path: SECTION, session: sessionOf(response), body }));
}

/** A refusal the page shows beside what was asked (4xx); the console's own failures go to the error handler. */
function refusal(error: unknown): AirlockError | undefined {
  return error instanceof AirlockError && httpStatusOf(error) < 500 ? error : undefined;
}

function body(request: Request): Record<string, unknown> {
  return (request.body ?? {}) as Record<string, unknown>;
}

async function createPlan(context: ConsoleContext, request: Request, response: Response): Promise<void> {
  const session = sessionOf(response);
  try {
    const version = queryText(body(request), "version", 64);
    if (
      version === undefined ||
      !plannableVersions(context, context.state.releases.current()).includes(version)
    ) {
      throw badParameter(
        "version",
        version ?? "",
        "an imported version of the installed bundle (the form lists them)",
      );
    }
    const plan = await planUpgrade({
      dataDir: context.dataDir,
      version,
      allowDowngrade: body(request).allowDowngrade === "on",
      actor: session.user.name,
    });
    response.redirect(303, `/upgrades/plans/${plan.id}`);
  } catch (error) {
    const refused = refusal(error);
    if (refused === undefined) throw error;
    send(response, "Upgrades", renderUpgrades(context, session, refused), httpStatusOf(refused));
  }
}

/** Runs a change to one plan; a refusal re-renders the plan's page with it, beside the field it is about. */
function planAction(
  context: ConsoleContext,
  act: (id: number, request: Request, response: Response) => void,
  problemOf: (error: AirlockError, request: Request) => PlanPageProblem = (error) => ({ action: error }),
) {
  return (request: Request, response: Response): void => {
    const id = pathId(request.params.id, "plan");
    context.state.plans.get(id);
    try {
      act(id, request, response);
      response.redirect(303, `/upgrades/plans/${id}`);
    } catch (error) {
      const refused = refusal(error);
      if (refused === undefined) throw error;
      const body = renderPlan(context, sessionOf(response), id, problemOf(refused, request));
      send(response, `Plan ${id}`, body, httpStatusOf(refused));
    }
  };
}

/** scheduleUpgrade as the console user, holding the writer lock; a stale plan is refused, not scheduled. */
function schedule(context: ConsoleContext, response: Response, id: number, request: ScheduleRequest): void {
  asActor(context, sessionOf(response).user.name, "console upgrade schedule", (state) => {
    const record = state.plans.get(id);
    if (planIsStale(record, state.releases.current())) throw staleError(record);
    return scheduleUpgrade(state, id, request, context.clock());
  });
}

async function rollback(context: ConsoleContext, request: Request, response: Response): Promise<void> {
  const hooks = requireDaemon(context);
  const { previous } = releasesToSwap(context.state);
  if (queryText(body(request), "release", 12) !== String(previous.id)) {
    throw new AirlockError(
      "STATE_CONFLICT",
      `the release to return to is now ${previous.version} (release ${previous.id}), not the one confirmed`,
      { hint: "review the rollback again: the Upgrades page leads to its confirmation" },
    );
  }
  const { runId } = await hooks.rollback(sessionOf(response).user.name);
  response.redirect(303, `/upgrades/runs/${runId}`);
}

/** The Upgrades pages: plans and their review, schedules, run now, the live timeline, history, rollback. */
export function upgradeRoutes(
  router: Router,
  context: ConsoleContext,
  limits: LiveLimits,
  logger: ConsoleLogger | undefined,
): void {
  router.get(SECTION, (_request, response) =>
    send(response, "Upgrades", renderUpgrades(context, sessionOf(response))),
  );
  router.post("/upgrades/plans", (request, response) => createPlan(context, request, response));
  router.get("/upgrades/plans/:id", (request, response) => {
    const id = pathId(request.params.id, "plan");
    send(response, `Plan ${id}`, renderPlan(context, sessionOf(response), id));
  });
  router.post(
    "/upgrades/plans/:id/schedule",
    planAction(
      context,
      (id, request, response) => schedule(context, response, id, readScheduleForm(body(request)).request()),
      (error, request) => {
        const failure = scheduleErrorOf(error);
        return failure.field === undefined
          ? { action: error }
          : { schedule: { values: readScheduleForm(body(request)).values, failure } };
      },
    ),
  );
  router.post(
    "/upgrades/plans/:id/run-now",
    planAction(context, (id, _request, response) => {
      const hooks = requireDaemon(context);
      schedule(context, response, id, { windows: [], freezes: [], now: true, hardDeadline: false });
      hooks.wake();
    }),
  );
  router.post(
    "/upgrades/plans/:id/cancel",
    planAction(context, (id, _request, response) => {
      asActor(context, sessionOf(response).user.name, "console upgrade cancel", (state) =>
        cancelUpgrade(state, id),
      );
    }),
  );
  router.get("/upgrades/runs/:id", (request, response) => {
    const id = pathId(request.params.id, "run");
    send(response, `Run ${id}`, renderRun(context, id));
  });
  const live = new RunLiveStreams(context, limits, logger);
  router.get("/upgrades/runs/:id/events", (request, response) => live.stream(request, response));
  router.get("/upgrades/rollback", (_request, response) => {
    requireDaemon(context);
    const { current, previous } = releasesToSwap(context.state);
    send(response, "Roll back", renderRollbackConfirmation(context, sessionOf(response), current, previous));
  });
  router.post("/upgrades/rollback", (request, response) => rollback(context, request, response));
}
