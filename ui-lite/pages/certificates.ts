import { listCertificates } from "../../installer/pki/index.js";
import type { ConsoleContext } from "../context.js";
import { formatTime } from "../format.js";
import { html, type SafeHtml } from "../html.js";
import type { ConsoleSession } from "../sessions.js";

export async function renderCertificates(
  context: ConsoleContext,
  session: ConsoleSession,
): Promise<SafeHtml> {
  const certificates = await listCertificates(context.pki);
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
    return html`<tr>
      <td>${certificate.name}</td>
      <td>${certificate.kind}</td>
      <td>${certificate.subject}</td>
      <td>
        ${sans.length === 0 ? html`<span class="muted">none</span>` : sans.map((san) => html`<code>${san}</code> `)}
      </td>
      <td>${formatTime(certificate.notAfter, context.timeZone)}</td>
      <td>${certificate.daysLeft}</td>
      <td><span class="status-${certificate.status}">${certificate.status}</span></td>
      <td>${rotate}</td>
    </tr>`;
  });
  return html`<div class="table-wrap">
    <table>
      <caption>
        The site CA and every certificate under
        <code>${context.pki.dir}</code>
      </caption>
      <thead>
        <tr>
          <th scope="col">Name</th>
          <th scope="col">Kind</th>
          <th scope="col">Subject</th>
          <th scope="col">SANs</th>
          <th scope="col">Expires</th>
          <th scope="col">Days left</th>
          <th scope="col">Status</th>
          <th scope="col">Action</th>
        </tr>
      </thead>
      <tbody>
        ${rows}
      </tbody>
    </table>
  </div>`;
}
