import type { UpgradeSchedule } from "../../installer/state/index.js";
import { upcomingWindows, type ScheduleRequest } from "../../installer/upgrade/index.js";
import { AirlockError } from "../../registry/oci/index.js";
import type { ConsoleContext } from "../context.js";
import { formatTime } from "../format.js";
import { html, type SafeHtml } from "../html.js";
import { dataTable } from "../layout.js";
import { queryText } from "../params.js";
import type { ConsoleSession } from "../sessions.js";

export type ScheduleField = "when" | "windows" | "freezes" | "at";

/** What the operator typed, kept to show again beside an error. */
export interface ScheduleFormValues {
  when: "windows" | "at";
  windows: string;
  freezes: string;
  at: string;
  hardDeadline: boolean;
}

export interface ScheduleFormError {
  field: ScheduleField | undefined;
  error: AirlockError;
}

export const EMPTY_SCHEDULE: ScheduleFormValues = {
  when: "windows",
  windows: "",
  freezes: "",
  at: "",
  hardDeadline: false,
};

/** Which field an error of `scheduleUpgrade` is about; undefined for the form as a whole. */
const FIELD_OF: Record<string, ScheduleField> = {
  WINDOW_INVALID: "windows",
  UPGRADE_NO_WINDOW_FITS: "windows",
  FREEZE_INVALID: "freezes",
  AT_INVALID: "at",
  AT_IN_PAST: "at",
};

const FIELDS: readonly string[] = ["when", "windows", "freezes", "at"];

export function scheduleErrorOf(error: AirlockError): ScheduleFormError {
  const named = error.code === "UI_BAD_PARAMETER" && FIELDS.includes(error.where ?? "");
  return { field: named ? (error.where as ScheduleField) : FIELD_OF[error.code], error };
}

const lines = (text: string): string[] =>
  text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "");

const MAX_LINES = 20;

function fieldRequired(field: ScheduleField, message: string): AirlockError {
  return new AirlockError("UI_BAD_PARAMETER", message, { where: field });
}

/** The form as typed, and the request it makes; a field missing is UI_BAD_PARAMETER on that field. */
export function readScheduleForm(body: Record<string, unknown>): {
  values: ScheduleFormValues;
  request: () => ScheduleRequest;
} {
  const when = queryText(body, "when", 10);
  const values: ScheduleFormValues = {
    when: when === "at" ? "at" : "windows",
    windows: queryText(body, "windows", 4_000) ?? "",
    freezes: queryText(body, "freezes", 4_000) ?? "",
    at: queryText(body, "at", 100) ?? "",
    hardDeadline: body.hardDeadline === "on",
  };
  const request = (): ScheduleRequest => {
    if (when !== "windows" && when !== "at") {
      throw fieldRequired("when", "choose when: in maintenance windows, or at a time");
    }
    const windows = lines(values.windows);
    const freezes = lines(values.freezes);
    if (windows.length > MAX_LINES || freezes.length > MAX_LINES) {
      throw fieldRequired(windows.length > MAX_LINES ? "windows" : "freezes", `at most ${MAX_LINES} lines`);
    }
    if (when === "windows" && windows.length === 0) {
      throw fieldRequired("windows", "give at least one window, one a line: DAYS HH:MM-HH:MM ZONE");
    }
    if (when === "at" && values.at.trim() === "") {
      throw fieldRequired("at", "give the time to start at, with an offset or a zone");
    }
    return {
      windows: when === "windows" ? windows : [],
      freezes,
      at: when === "at" ? values.at.trim() : undefined,
      now: false,
      hardDeadline: values.hardDeadline,
    };
  };
  return { values, request };
}

/** The bad token of a spec error (`pointedError`'s caret line under the spec), to mark in the page. */
function pointed(error: AirlockError): { spec: string; at: number; length: number } | undefined {
  const [, specLine, caretLine] = error.message.split("\n");
  if (specLine === undefined || caretLine === undefined || !/^ {2} *\^+$/.test(caretLine)) return undefined;
  const caret = caretLine.slice(2);
  const at = caret.indexOf("^");
  return { spec: specLine.slice(2), at, length: caret.length - at };
}

function errorText(error: AirlockError): SafeHtml {
  const bad = pointed(error);
  const problem = error.message.split("\n")[0];
  const marked =
    bad === undefined
      ? ""
      : html`<code class="spec"
          >${bad.spec.slice(0, bad.at)}<mark>${bad.spec.slice(bad.at, bad.at + bad.length) || " "}</mark>${bad.spec.slice(bad.at + bad.length)}</code
        >`;
  return html`${problem}
  ${marked}${error.hint === undefined ? "" : html`<br /><span class="muted">${error.hint}</span>`}`;
}

function fieldMessage(field: ScheduleField, failure: ScheduleFormError | undefined): SafeHtml {
  if (failure?.field !== field) return html``;
  return html`<p class="field-error" id="${field}-error" role="alert">${errorText(failure.error)}</p>`;
}

function invalid(field: ScheduleField, failure: ScheduleFormError | undefined): SafeHtml {
  return failure?.field === field
    ? html` aria-invalid="true" aria-describedby="${field}-error ${field}-help"`
    : html` aria-describedby="${field}-help"`;
}

/** The schedule form: windows (one a line) or a start time, freezes, the hard deadline. */
export function scheduleForm(
  planId: number,
  session: ConsoleSession,
  values: ScheduleFormValues,
  failure: ScheduleFormError | undefined,
): SafeHtml {
  const checked = (when: string): SafeHtml => (values.when === when ? html` checked` : html``);
  return html`<form class="stack wide" method="post" action="/upgrades/plans/${planId}/schedule" novalidate>
    <input type="hidden" name="_csrf" value="${session.csrfToken}" />
    <fieldset${failure?.field === "when" ? html` aria-describedby="when-error"` : ""}>
      <legend>When</legend>
      <label class="inline"><input type="radio" name="when" value="windows"${checked("windows")} /> In maintenance windows</label>
      <label class="inline"><input type="radio" name="when" value="at"${checked("at")} /> At a time</label>
      ${fieldMessage("when", failure)}
    </fieldset>
    <label for="windows">Maintenance windows, one a line</label>
    <textarea id="windows" name="windows" rows="3"${invalid("windows", failure)}>${values.windows}</textarea>
    ${fieldMessage("windows", failure)}
    <p id="windows-help" class="muted">DAYS HH:MM-HH:MM ZONE, e.g. <code>Sat 02:00-04:00 Europe/Berlin</code> or <code>Mon-Fri 22:00-02:00 UTC</code></p>
    <label for="at">Start at</label>
    <input id="at" name="at" value="${values.at}"${invalid("at", failure)} />
    ${fieldMessage("at", failure)}
    <p id="at-help" class="muted">An ISO date-time with an offset or a zone: <code>2026-12-05T02:00Z</code>, <code>2026-12-05T02:00 Europe/Berlin</code></p>
    <label for="freezes">Freezes, one a line (optional)</label>
    <textarea id="freezes" name="freezes" rows="2"${invalid("freezes", failure)}>${values.freezes}</textarea>
    ${fieldMessage("freezes", failure)}
    <p id="freezes-help" class="muted">FROM..TO [ZONE]: no start that would run into it, e.g. <code>2026-12-20..2027-01-06 Europe/Berlin</code></p>
    <label class="inline"
      ><input type="checkbox" name="hardDeadline"${values.hardDeadline ? html` checked` : ""} /> Hard deadline: roll
      back rather than overrun the window's end</label
    >
    <button type="submit">Schedule</button>
  </form>`;
}

function whenText(schedule: UpgradeSchedule, timeZone: string): SafeHtml {
  if (schedule.now) return html`now: the site daemon starts it as soon as it can`;
  if (schedule.at !== undefined) return html`at ${formatTime(schedule.at, timeZone)}`;
  return html`in ${schedule.windows.length === 1 ? "the window" : "the windows"}
  ${schedule.windows.map((spec, i) => html`${i === 0 ? "" : ", "}<code>${spec}</code>`)}`;
}

/** A plan's active schedule: when, the freezes, and the windows' next openings in UTC and the site's zone. */
export function scheduleView(context: ConsoleContext, schedule: UpgradeSchedule): SafeHtml {
  const view = upcomingWindows(context.state, context.clock()).find(
    (entry) => entry.schedule.id === schedule.id,
  );
  const next = view?.next ?? [];
  return html`<section aria-labelledby="schedule">
    <h2 id="schedule">Schedule</h2>
    <p>Runs ${whenText(schedule, context.timeZone)}${schedule.hardDeadline ? "; hard deadline" : ""}.</p>
    ${
      schedule.freezes.length === 0
        ? ""
        : html`<p>
            Not during the freezes
            ${schedule.freezes.map((spec, i) => html`${i === 0 ? "" : ", "}<code>${spec}</code>`)}.
          </p>`
    }
    ${
      next.length === 0
        ? ""
        : dataTable({
            caption: `The next ${next.length} openings`,
            columns: ["Opens", "Closes", "In the window's zone", "Window"],
            rows: next.map((opening) => [
              formatTime(opening.start, context.timeZone),
              formatTime(opening.end, context.timeZone),
              html`${opening.localStart} – ${opening.localEnd}`,
              html`<code>${opening.window}</code>`,
            ]),
          })
    }
  </section>`;
}
