import type { EventFilter, EventOutcome, StateEvent } from "../../installer/state/index.js";
import type { ConsoleContext } from "../context.js";
import { formatTime } from "../format.js";
import { html, type SafeHtml } from "../html.js";
import { dataTable } from "../layout.js";
import { badParameter, queryInteger, queryText } from "../params.js";

export const EVENTS_PER_PAGE = 50;
const OUTCOMES: readonly EventOutcome[] = ["started", "ok", "failed", "refused", "skipped"];

interface EventQuery {
  action: string | undefined;
  object: string | undefined;
  outcome: EventOutcome | undefined;
  before: number | undefined;
}

function parseQuery(query: Record<string, unknown>): EventQuery {
  const outcome = queryText(query, "outcome", 20);
  if (outcome !== undefined && !(OUTCOMES as readonly string[]).includes(outcome)) {
    throw badParameter("outcome", outcome, `one of ${OUTCOMES.join(", ")}`);
  }
  return {
    action: queryText(query, "action"),
    object: queryText(query, "object"),
    outcome: outcome as EventOutcome | undefined,
    before: query.before === undefined ? undefined : queryInteger(query, "before", 1),
  };
}

function filterForm(filter: EventQuery): SafeHtml {
  const options = OUTCOMES.map(
    (outcome) =>
      html`<option value="${outcome}" ${filter.outcome === outcome ? html` selected` : ""}>
        ${outcome}
      </option>`,
  );
  return html`<form class="filters" method="get" action="/events">
    <label>Action <input name="action" value="${filter.action ?? ""}" placeholder="ui.login" /></label>
    <label
      >Object <input name="object" value="${filter.object ?? ""}" placeholder="install/ (a prefix ends in /)"
    /></label>
    <label
      >Outcome
      <select name="outcome">
        <option value="">any</option>
        ${options}
      </select></label
    >
    <button type="submit">Filter</button>
  </form>`;
}

function detailText(event: StateEvent): string {
  return Object.keys(event.detail).length === 0 ? "" : JSON.stringify(event.detail);
}

function pageLink(filter: EventQuery, before: number | undefined, label: string): SafeHtml {
  const params = new URLSearchParams();
  if (filter.action !== undefined) params.set("action", filter.action);
  if (filter.object !== undefined) params.set("object", filter.object);
  if (filter.outcome !== undefined) params.set("outcome", filter.outcome);
  if (before !== undefined) params.set("before", String(before));
  const search = params.toString();
  return html`<a href="/events${search === "" ? "" : `?${search}`}">${label}</a>`;
}

/** The audit log, newest first, filtered by action, object (exact or a prefix ending in `/`) and outcome. */
export function renderEvents(context: ConsoleContext, query: Record<string, unknown>): SafeHtml {
  const filter = parseQuery(query);
  const listFilter: EventFilter = { newestFirst: true, limit: EVENTS_PER_PAGE + 1 };
  if (filter.action !== undefined) listFilter.action = filter.action;
  if (filter.object !== undefined) listFilter.object = filter.object;
  if (filter.outcome !== undefined) listFilter.outcome = filter.outcome;
  if (filter.before !== undefined) listFilter.beforeId = filter.before;
  const found = context.state.events.list(listFilter);
  const events = found.slice(0, EVENTS_PER_PAGE);
  const rows = events.map((event) => [
    formatTime(event.time, context.timeZone),
    html`${event.actor}`,
    html`<code>${event.action}</code>`,
    html`<code>${event.object}</code>`,
    html`<span class="status-${event.outcome}">${event.outcome}</span>`,
    html`<code>${detailText(event)}</code>`,
  ]);
  const older = found.length > EVENTS_PER_PAGE ? events.at(-1)!.id : undefined;
  return html`${filterForm(filter)}
    ${
      events.length === 0
        ? html`<p>No events match.</p>`
        : dataTable({
            caption: `Events, newest first${filter.before === undefined ? "" : `, before #${filter.before}`}`,
            columns: ["When", "Who", "Action", "Object", "Outcome", "Detail"],
            rows,
          })
    }
    <nav class="pager" aria-label="Pages of events">
      ${filter.before === undefined ? "" : pageLink(filter, undefined, "Newest")}
      ${older === undefined ? "" : pageLink(filter, older, "Older events")}
    </nav>`;
}
