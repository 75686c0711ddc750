import { describeRef } from "../../installer/cluster/index.js";
import { disruptionText, type ObjectDiff, type UpgradePlan } from "../../installer/upgrade/index.js";
import { html, type SafeHtml } from "../html.js";
import { dataTable } from "../layout.js";

/** A JSON value as the diff shows it, cut where a whole list would swamp the page. */
const VALUE_LIMIT = 2_000;

function valueCell(value: unknown, present: boolean): SafeHtml {
  if (!present) return html`<span class="muted">absent</span>`;
  const text = JSON.stringify(value) ?? String(value);
  const shown = text.length > VALUE_LIMIT ? `${text.slice(0, VALUE_LIMIT)}…` : text;
  return html`<code class="value">${shown}</code>`;
}

const CHANGE_TEXT = {
  added: "added",
  removed: "removed",
  changed: "changed",
  unchanged: "unchanged",
} as const;

function objectSection(object: ObjectDiff, index: number): SafeHtml {
  const name = describeRef(object.ref);
  const heading = html`<h3 id="object-${index}">
    ${name} <span class="change-${object.change}">${CHANGE_TEXT[object.change]}</span>
  </h3>`;
  const disruption = html`<p>
    Disruption:
    <strong class="disruption-${object.disruption.kind}">${disruptionText(object.disruption)}</strong>
    ${object.disruption.kind === "recreate" ? html`<span class="muted">(${object.disruption.reason})</span>` : ""}
  </p>`;
  const notes = object.notes.map((note) => html`<p class="notice">${note}</p>`);
  const fields =
    object.change === "changed"
      ? dataTable({
          caption: `${object.fields.length} changed ${object.fields.length === 1 ? "field" : "fields"} of ${name}`,
          columns: ["Field", "Current", "Incoming"],
          rows: object.fields.map((field) => [
            html`<code>${field.path}</code>`,
            valueCell(field.current, "current" in field),
            valueCell(field.incoming, "incoming" in field),
          ]),
        })
      : html`<p class="muted">
          ${object.change === "added" ? "New in this release: created as rendered." : "Not in the new release: deleted."}
        </p>`;
  return html`<section class="object" aria-labelledby="object-${index}">
    ${heading}${disruption}${notes}${fields}
  </section>`;
}

/** The objects that change, side by side per field (current | incoming), then those that do not. */
export function objectsDiff(plan: UpgradePlan): SafeHtml {
  const changing = plan.objects.flatMap((object, index) =>
    object.change === "unchanged" ? [] : [objectSection(object, index)],
  );
  const unchanged = plan.objects.filter((object) => object.change === "unchanged");
  const count = (change: ObjectDiff["change"]): number =>
    plan.objects.filter((object) => object.change === change).length;
  return html`<section aria-labelledby="objects">
    <h2 id="objects">Objects</h2>
    <p>
      ${count("changed")} changed, ${count("added")} added, ${count("removed")} removed, ${unchanged.length}
      unchanged.
    </p>
    ${changing}
    ${
      unchanged.length === 0
        ? ""
        : html`<details>
            <summary>${unchanged.length} unchanged objects</summary>
            <ul>
              ${unchanged.map((object) => html`<li>${describeRef(object.ref)}</li>`)}
            </ul>
          </details>`
    }
  </section>`;
}

/** The values that render differently, the operator's own marked: theirs wins over the bundle's default. */
export function valuesDiff(plan: UpgradePlan): SafeHtml {
  const body =
    plan.values.length === 0
      ? html`<p>No value renders differently.</p>`
      : dataTable({
          caption: "Values that change; ★ marks the operator's overrides, carried over",
          columns: ["Value", "Installed", "Bundle default", "Renders as", "Set by"],
          rows: plan.values.map((value) => [
            html`<code>${value.path}</code>`,
            valueCell(value.installed, "installed" in value),
            valueCell(value.incomingDefault, "incomingDefault" in value),
            valueCell(value.rendered, "rendered" in value),
            value.overridden
              ? html`<strong class="override">★ the operator</strong>`
              : html`<span class="muted">the bundle</span>`,
          ]),
        });
  return html`<section aria-labelledby="values">
    <h2 id="values">Values</h2>
    ${body}
  </section>`;
}

export function imagesAdded(plan: UpgradePlan): SafeHtml {
  return html`<section aria-labelledby="images">
    <h2 id="images">Images added</h2>
    ${
      plan.imagesAdded.length === 0
        ? html`<p>None: every image is one the installed release runs.</p>`
        : html`<ul>
            ${plan.imagesAdded.map((ref) => html`<li><code>${ref}</code></li>`)}
          </ul>`
    }
  </section>`;
}
