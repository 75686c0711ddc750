import { formatBytes } from "../../registry/oci/index.js";
import type { ConsoleContext } from "../context.js";
import { shortDigest } from "../format.js";
import { html, type SafeHtml } from "../html.js";
import { dataTable } from "../layout.js";
import { queryInteger } from "../params.js";

export const TAGS_PER_PAGE = 100;

export function renderImages(context: ConsoleContext, query: Record<string, unknown>): SafeHtml {
  const { tags, repositories } = context.store.countTags();
  const pages = Math.max(1, Math.ceil(tags / TAGS_PER_PAGE));
  const pageNumber = Math.min(queryInteger(query, "page", 1), pages);
  if (tags === 0) {
    return html`<p>The registry holds no tags yet: importing a bundle adds its images.</p>`;
  }
  // Only the page's rows are read, and the sizes of their manifests as the bundles recorded them.
  const shown = context.store.listTagPage((pageNumber - 1) * TAGS_PER_PAGE, TAGS_PER_PAGE);
  const sizes = context.store.imageSizes(shown.map((tag) => tag.digest));
  const rows = shown.map((tag) => {
    const size = sizes.get(tag.digest);
    return [
      html`${tag.repository}`,
      html`${tag.tag}`,
      html`<code title="${tag.digest}">${shortDigest(tag.digest)}</code>`,
      size === undefined
        ? html`<span class="muted">pushed, not from a bundle</span>`
        : html`${formatBytes(size)}`,
    ];
  });
  const link = (page: number, label: string, rel: string): SafeHtml =>
    html`<a href="/images?page=${page}" rel="${rel}">${label}</a>`;
  const table = dataTable({
    caption: `${tags} tags in ${repositories} repositories; page ${pageNumber} of ${pages}`,
    columns: ["Repository", "Tag", "Digest", "Size"],
    rows,
  });
  return html`${table}
    <nav class="pager" aria-label="Pages of tags">
      ${pageNumber > 1 ? link(pageNumber - 1, "Previous page", "prev") : ""}
      ${pageNumber < pages ? link(pageNumber + 1, "Next page", "next") : ""}
    </nav>`;
}
