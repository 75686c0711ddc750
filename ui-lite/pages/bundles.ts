import type { ConsoleContext } from "../context.js";
import { formatBytes, formatTime, shortDigest } from "../format.js";
import { html, type SafeHtml } from "../html.js";
import { dataTable } from "../layout.js";

const SIGNATURE_TEXT = { verified: "verified", unchecked: "not checked", unsigned: "unsigned" } as const;

export function renderBundles(context: ConsoleContext): SafeHtml {
  const bundles = context.store.listBundles().reverse();
  if (bundles.length === 0) {
    return html`<p>
      No bundle imported yet: <code>airlock bundle import FILE</code> imports one. Upload from this page comes
      later.
    </p>`;
  }
  const rows = bundles.map((bundle) => [
    html`${bundle.name}`,
    html`${bundle.version}${bundle.upgradeFrom === undefined ? "" : html` <span class="muted">(upgrades from ${bundle.upgradeFrom})</span>`}`,
    html`<span class="status-${bundle.signature}">${SIGNATURE_TEXT[bundle.signature]}</span>`,
    html`${bundle.images.length}`,
    html`${formatBytes(bundle.totalBytes)}`,
    formatTime(bundle.importedAt, context.timeZone),
    html`<code title="${bundle.digest}">${shortDigest(bundle.digest)}</code
      >${bundle.baseDigest === undefined ? "" : html` <span class="muted">delta</span>`}`,
  ]);
  return dataTable({
    caption: `${bundles.length} imported bundles, newest first`,
    columns: ["Name", "Version", "Signature", "Images", "Size", "Imported", "Digest"],
    rows,
  });
}
