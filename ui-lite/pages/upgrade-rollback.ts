import type { Release } from "../../installer/state/index.js";
import type { ConsoleContext } from "../context.js";
import { DATA_NOT_ROLLED_BACK_SENTENCE, formatTime } from "../format.js";
import { html, type SafeHtml } from "../html.js";
import type { ConsoleSession } from "../sessions.js";

function releaseName(release: Release): string {
  return `${release.bundleName} ${release.version} (release ${release.id})`;
}

/**
 * The confirmation a rollback needs: the release it returns to, what happens to the one running now,
 * and that data written since is not rolled back. The form carries the release it names, so a
 * rollback confirmed for one release never returns to another.
 */
export function renderRollbackConfirmation(
  context: ConsoleContext,
  session: ConsoleSession,
  current: Release,
  previous: Release,
): SafeHtml {
  const running = context.state.runs.list().find((run) => run.state === "running");
  return html`<section aria-labelledby="confirm">
    <h2 id="confirm">Roll the plane back to ${releaseName(previous)}?</h2>
    <ul>
      <li>
        The site daemon re-applies ${releaseName(previous)}, deployed
        ${formatTime(previous.createdAt, context.timeZone)}: its config first, then the msgbroker StatefulSet,
        so every broker pod returns to that revision; it waits until every pod is Ready and clustered, then
        removes what the current release added.
      </li>
      <li>The current release, ${releaseName(current)}, is marked rolled back.</li>
      ${
        running === undefined
          ? ""
          : html`<li>
              Run ${running.id} of plan ${running.planId} is going on now, on its step
              ${running.currentStep ?? "start"}.
            </li>`
      }
      <li><strong>${DATA_NOT_ROLLED_BACK_SENTENCE}</strong> (<code>DATA_NOT_ROLLED_BACK</code>).</li>
    </ul>
    ${
      session.user.role !== "admin"
        ? html`<p class="muted">Only an admin rolls back. <a href="/upgrades">Back to Upgrades</a></p>`
        : html`<form method="post" action="/upgrades/rollback" class="actions">
            <input type="hidden" name="_csrf" value="${session.csrfToken}" />
            <input type="hidden" name="release" value="${previous.id}" />
            <button type="submit" class="danger">
              Roll back to ${previous.bundleName} ${previous.version}
            </button>
            <a href="/upgrades">Keep ${current.version}: back to Upgrades</a>
          </form>`
    }
  </section>`;
}
