import { MediaType } from "../oci/index.js";
import type { Store } from "../store/index.js";
import { checkDigest, checkName, sendJson, type Handler, type RequestContext } from "./context.js";
import { RegistryError } from "./errors.js";

function pageSize(url: URL, max: number): number {
  const n = url.searchParams.get("n");
  if (n === null) return max;
  const value = Number(n);
  if (!/^\d+$/.test(n) || !Number.isSafeInteger(value))
    throw new RegistryError("PAGINATION_NUMBER_INVALID", `n=${n} is not a page size`);
  return Math.min(value, max);
}

/** RFC 5988 Link to the next page, as the spec asks when a page is full. */
function nextLink(url: URL, n: number, last: string): string {
  const next = new URL(url.pathname, "http://registry");
  next.searchParams.set("n", String(n));
  next.searchParams.set("last", last);
  return `<${next.pathname}${next.search}>; rel="next"`;
}

/** Tags and the catalog, paged by `n` and `last` (at most `maxPage`), and a subject's referrers. */
export function listingHandlers(
  store: Store,
  maxPage: number,
): { listTags: Handler; catalog: (context: RequestContext) => void; listReferrers: Handler } {
  const listTags: Handler = ({ res, head, url, name }) => {
    checkName(name);
    if (!store.hasRepository(name))
      throw new RegistryError("NAME_UNKNOWN", `repository ${name} is not known`);
    const n = pageSize(url, maxPage);
    const tags = store.listTagsOf(name, n, url.searchParams.get("last") ?? undefined);
    const link: Record<string, string> =
      n > 0 && tags.length === n ? { Link: nextLink(url, n, tags.at(-1)!) } : {};
    sendJson(res, head, { name, tags }, link);
    return Promise.resolve();
  };

  const catalog = ({ res, head, url }: RequestContext): void => {
    const n = pageSize(url, maxPage);
    const repositories = store.listRepositories(n, url.searchParams.get("last") ?? undefined);
    const link: Record<string, string> =
      n > 0 && repositories.length === n ? { Link: nextLink(url, n, repositories.at(-1)!) } : {};
    sendJson(res, head, { repositories }, link);
  };

  /** GET /v2/<name>/referrers/<digest>: an index of the manifests whose subject it is, filterable. */
  const listReferrers: Handler = ({ res, head, url, name, reference }) => {
    checkName(name);
    const subject = checkDigest(reference);
    const wanted = url.searchParams.get("artifactType");
    const referrers = store
      .listReferrers(name, subject)
      .filter((row) => wanted === null || row.artifactType === wanted)
      .map((row) => ({
        mediaType: row.mediaType,
        digest: row.digest,
        size: row.size,
        ...(row.artifactType === undefined ? {} : { artifactType: row.artifactType }),
        ...(row.annotations === undefined ? {} : { annotations: row.annotations }),
      }));
    const body = JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: referrers });
    res.writeHead(200, {
      "Content-Type": MediaType.OciIndex,
      "Content-Length": Buffer.byteLength(body),
      ...(wanted === null ? {} : { "OCI-Filters-Applied": "artifactType" }),
    });
    res.end(head ? undefined : body);
    return Promise.resolve();
  };

  return { listTags, catalog, listReferrers };
}
