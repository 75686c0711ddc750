import type { AirlockError } from "../../registry/oci/index.js";
import { html, type SafeHtml } from "../html.js";

/** A refused request's error where the page shows it: its code, message and hint. */
export function refusalNotice(
  error: AirlockError,
  options: { id?: string; className?: string } = {},
): SafeHtml {
  return html`<p
    class="${options.className ?? "error"}"
    ${options.id === undefined ? "" : html`id="${options.id}"`}
    role="alert"
  >
    ${error.code}:
    ${error.message}${error.hint === undefined ? "" : html`<br /><span class="muted">${error.hint}</span>`}
  </p>`;
}
