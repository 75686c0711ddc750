import { formatBytes } from "../../registry/oci/index.js";
import { statfs } from "node:fs/promises";
import type { ConsoleContext } from "../context.js";
import { formatTime } from "../format.js";
import { html, type SafeHtml } from "../html.js";

/** Certificates shown as alerts when they expire within this many days. */
export const EXPIRY_ALERT_DAYS = 30;
export const DISK_ALERT_PERCENT = 80;

async function diskTile(dataDir: string): Promise<{ tile: SafeHtml; alert: SafeHtml | undefined }> {
  const fs = await statfs(dataDir);
  const total = fs.blocks * fs.bsize;
  const free = fs.bavail * fs.bsize;
  const used = total - fs.bfree * fs.bsize;
  const percent = total === 0 ? 0 : Math.round((used / total) * 100);
  return {
    tile: html`<section class="tile" aria-labelledby="disk">
      <h2 id="disk">Disk</h2>
      <p>
        ${formatBytes(used)} used, ${formatBytes(free)} free (${percent} % used) on the data dir's filesystem
      </p>
      <p class="muted"><code>${dataDir}</code></p>
    </section>`,
    alert:
      percent > DISK_ALERT_PERCENT
        ? html`<li>The data dir's disk is ${percent} % full (above ${DISK_ALERT_PERCENT} %).</li>`
        : undefined,
  };
}

function releaseTile(context: ConsoleContext): SafeHtml {
  const release = context.state.releases.current();
  const install = context.state.installs.latest();
  const body =
    release !== undefined
      ? html`<p>
          <strong>${release.bundleName} ${release.version}</strong>, ${release.status} since
          ${formatTime(release.updatedAt, context.timeZone)}
        </p>`
      : install !== undefined
        ? html`<p>
            No release deployed. The latest install (${install.bundleName} ${install.version}) is
            ${install.state}.
          </p>`
        : html`<p>Nothing installed yet: <code>airlock install</code> deploys the plane.</p>`;
  return html`<section class="tile" aria-labelledby="release">
    <h2 id="release">Installed release</h2>
    ${body}
  </section>`;
}

/** Tiles whose data has no source yet: said plainly rather than guessed. */
const UNAVAILABLE = [
  {
    id: "plane",
    title: "Plane",
    text: "Plane state and msgbroker pods: not available yet (comes with the site daemon).",
  },
  {
    id: "registry",
    title: "Registry",
    text: "Registry status: not available yet (comes with the site daemon).",
  },
  { id: "upgrades", title: "Next window", text: "Upgrades and maintenance windows: not available yet." },
];

export async function renderOverview(context: ConsoleContext): Promise<SafeHtml> {
  const certificates = await context.certificates.list();
  const expiring = certificates.filter(
    (certificate) => certificate.daysLeft <= EXPIRY_ALERT_DAYS || certificate.status !== "ok",
  );
  const disk = await diskTile(context.dataDir);
  const bundles = context.store.listBundleSummaries();
  const alerts = [
    ...expiring.map(
      (certificate) =>
        html`<li>
          Certificate <a href="/certificates">${certificate.name}</a>
          ${certificate.status === "ok" ? "expires" : `is ${certificate.status}, expiring`} in
          ${certificate.daysLeft} days, on ${formatTime(certificate.notAfter, context.timeZone)}.
        </li>`,
    ),
    ...(disk.alert === undefined ? [] : [disk.alert]),
  ];
  return html` <section aria-labelledby="alerts" class="${alerts.length === 0 ? "notice" : "error"}">
      <h2 id="alerts">Alerts</h2>
      ${
        alerts.length === 0
          ? html`<p>
              None: no certificate expires within ${EXPIRY_ALERT_DAYS} days and the disk is below
              ${DISK_ALERT_PERCENT} %.
            </p>`
          : html`<ul>
              ${alerts}
            </ul>`
      }
    </section>
    <div class="tiles">
      ${releaseTile(context)}
      <section class="tile" aria-labelledby="bundles">
        <h2 id="bundles">Bundles</h2>
        <p>
          <a href="/bundles">${bundles.length} imported</a
          >${bundles.length === 0 ? "" : html`, latest ${bundles.at(-1)!.name} ${bundles.at(-1)!.version}`}
        </p>
      </section>
      <section class="tile" aria-labelledby="certificates">
        <h2 id="certificates">Certificates</h2>
        <p>
          <a href="/certificates">${certificates.length} in the site PKI</a>, ${expiring.length} need
          attention
        </p>
      </section>
      ${disk.tile}
      ${UNAVAILABLE.map(
        (tile) =>
          html`<section class="tile unavailable" aria-labelledby="${tile.id}">
            <h2 id="${tile.id}">${tile.title}</h2>
            <p>${tile.text}</p>
          </section>`,
      )}
    </div>`;
}
