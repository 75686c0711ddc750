import { formatBytes } from "../../registry/oci/index.js";
import type { ConsoleContext } from "../context.js";
import { formatTime, shortDigest } from "../format.js";
import { html, type SafeHtml } from "../html.js";
import { dataTable } from "../layout.js";
import type { ConsoleSession } from "../sessions.js";

const SIGNATURE_TEXT = { verified: "verified", unchecked: "not checked", unsigned: "unsigned" } as const;

/** Admins get the resumable upload (`/assets/upload.js`); viewers the list only. */
function uploadForm(session: ConsoleSession): SafeHtml {
  if (session.user.role !== "admin") return html``;
  return html`<section class="upload" aria-labelledby="upload-heading">
    <h2 id="upload-heading">Upload a bundle</h2>
    <form id="upload" data-csrf="${session.csrfToken}">
      <div id="upload-drop" class="drop">
        <label for="upload-file">Bundle file, or all its parts (.001, .002, …)</label>
        <input id="upload-file" name="bundle" type="file" multiple />
        <p class="muted">or drop the files here. A dropped connection resumes where it stopped.</p>
      </div>
      <button type="submit">Upload and import</button>
    </form>
    <label for="upload-progress">Progress</label>
    <progress id="upload-progress" max="1" value="0"></progress>
    <p id="upload-status" role="status" aria-live="polite"></p>
    <script src="/assets/upload.js" defer></script>
  </section>`;
}

function bundleList(context: ConsoleContext): SafeHtml {
  const bundles = context.store.listBundleSummaries().reverse();
  if (bundles.length === 0) {
    return html`<p>No bundle imported yet: upload one here, or <code>airlock bundle import FILE</code>.</p>`;
  }
  const rows = bundles.map((bundle) => [
    html`${bundle.name}`,
    html`${bundle.version}${bundle.upgradeFrom === undefined ? "" : html` <span class="muted">(upgrades from ${bundle.upgradeFrom})</span>`}`,
    html`<span class="status-${bundle.signature}">${SIGNATURE_TEXT[bundle.signature]}</span>`,
    html`${bundle.imageCount}`,
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

export function renderBundles(context: ConsoleContext, session: ConsoleSession): SafeHtml {
  return html`<div id="bundle-list">${bundleList(context)}</div>
    ${uploadForm(session)}`;
}
