import type { ConsoleContext } from "../context.js";
import { formatTime } from "../format.js";
import { html, type SafeHtml } from "../html.js";
import { dataTable } from "../layout.js";
import type { ConsoleSession } from "../sessions.js";

export async function renderCertificates(
  context: ConsoleContext,
  session: ConsoleSession,
): Promise<SafeHtml> {
  const certificates = await context.certificates.list();
  if (certificates.length === 0) {
    return html`<p>
      The site PKI holds no certificate yet: <code>airlock install</code> makes the site CA.
    </p>`;
  }
  const admin = session.user.role === "admin";
  const rows = certificates.map((certificate) => {
    const sans = [
      ...certificate.dnsNames.map((name) => `DNS:${name}`),
      ...certificate.ipAddresses.map((ip) => `IP:${ip}`),
    ];
    const isCa = certificate.kind === "ca";
    const rotate =
      admin && !isCa
        ? html`<form method="post" action="/certificates/${certificate.name}/rotate">
            <input type="hidden" name="_csrf" value="${session.csrfToken}" />
            <button type="submit" aria-label="Rotate ${certificate.name}">Rotate</button>
          </form>`
        : html`<span class="muted">${isCa ? "airlock pki rotate --ca" : "admins only"}</span>`;
    return [
      html`${certificate.name}`,
      html`${certificate.kind}`,
      html`${certificate.subject}`,
      sans.length === 0
        ? html`<span class="muted">none</span>`
        : html`${sans.map((san) => html`<code>${san}</code> `)}`,
      formatTime(certificate.notAfter, context.timeZone),
      html`${certificate.daysLeft}`,
      html`<span class="status-${certificate.status}">${certificate.status}</span>`,
      rotate,
    ];
  });
  return dataTable({
    caption: html`The site CA and every certificate under <code>${context.pki.dir}</code>`,
    columns: ["Name", "Kind", "Subject", "SANs", "Expires", "Days left", "Status", "Action"],
    rows,
  });
}
