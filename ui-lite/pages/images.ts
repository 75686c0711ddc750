import { formatBytes } from "../../registry/oci/index.js";
import type { ConsoleContext } from "../context.js";
import { shortDigest } from "../format.js";
import { html, type SafeHtml } from "../html.js";
import { dataTable } from "../layout.js";
import { queryInteger } from "../params.js";

export const TAGS_PER_PAGE = 100;

/** Image sizes as the bundles that brought them recorded them, by manifest digest. */
function sizesByDigest(context: ConsoleContext): Map<string, number> {
  const sizes = new Map<string, number>();
  for (const bundle of context.store.listBundles()) {
    for (const image of bundle.images) sizes.set(image.digest, image.size);
  }
  return sizes;
}

export function renderImages(context: ConsoleContext, query: Record<string, unknown>): SafeHtml {
  const tags = context.store.listTags();
  const pages = Math.max(1, Math.ceil(tags.length / TAGS_PER_PAGE));
  const pageNumber = Math.min(queryInteger(query, "page", 1), pages);
  if (tags.length === 0) {
    return html`<p>The registry holds no tags yet: importing a bundle adds its images.</p>`;
  }
  const repositories = new Set(tags.map((tag) => tag.repository)).size;
  const sizes = sizesByDigest(context);
  const shown = tags.slice((pageNumber - 1) * TAGS_PER_PAGE, pageNumber * TAGS_PER_PAGE);
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
    caption: `${tags.length} tags in ${repositories} repositories; page ${pageNumber} of ${pages}`,
    columns: ["Repository", "Tag", "Digest", "Size"],
    rows,
  });
  return html`${table}
    <nav class="pager" aria-label="Pages of tags">
      ${pageNumber > 1 ? link(pageNumber - 1, "Previous page", "prev") : ""}
      ${pageNumber < pages ? link(pageNumber + 1, "Next page", "next") : ""}
    </nav>`;
}
