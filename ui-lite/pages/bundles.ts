import type { ConsoleContext } from "../context.js";
import { formatBytes, formatTime, shortDigest } from "../format.js";
import { html, type SafeHtml } from "../html.js";

const SIGNATURE_TEXT = { verified: "verified", unchecked: "not checked", unsigned: "unsigned" } as const;

export function renderBundles(context: ConsoleContext): SafeHtml {
  const bundles = context.store.listBundles().reverse();
  if (bundles.length === 0) {
    return html`<p>
      No bundle imported yet: <code>airlock bundle import FILE</code> imports one. Upload from this page comes
      later.
    </p>`;
  }
  const rows = bundles.map(
    (bundle) =>
      html`<tr>
        <td>${bundle.name}</td>
        <td>
          ${bundle.version}${bundle.upgradeFrom === undefined ? "" : html` <span class="muted">(upgrades from ${bundle.upgradeFrom})</span>`}
        </td>
        <td><span class="status-${bundle.signature}">${SIGNATURE_TEXT[bundle.signature]}</span></td>
        <td>${bundle.images.length}</td>
        <td>${formatBytes(bundle.totalBytes)}</td>
        <td>${formatTime(bundle.importedAt, context.timeZone)}</td>
        <td>
          <code title="${bundle.digest}">${shortDigest(bundle.digest)}</code
          >${bundle.baseDigest === undefined ? "" : html` <span class="muted">delta</span>`}
        </td>
      </tr>`,
  );
  return html`<div class="table-wrap">
    <table>
      <caption>
        ${bundles.length} imported bundles, newest first
      </caption>
      <thead>
        <tr>
          <th scope="col">Name</th>
          <th scope="col">Version</th>
          <th scope="col">Signature</th>
          <th scope="col">Images</th>
          <th scope="col">Size</th>
          <th scope="col">Imported</th>
          <th scope="col">Digest</th>
        </tr>
      </thead>
      <tbody>
        ${rows}
      </tbody>
    </table>
  </div>`;
}
