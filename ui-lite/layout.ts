import { html, type SafeHtml } from "./html.js";
import type { ConsoleSession } from "./sessions.js";

export const NAV = [
  { href: "/", label: "Overview" },
  { href: "/bundles", label: "Bundles" },
  { href: "/images", label: "Images" },
  { href: "/upgrades", label: "Upgrades" },
  { href: "/certificates", label: "Certificates" },
  { href: "/events", label: "Events" },
] as const;

function document(title: string, body: SafeHtml): string {
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>${title} · Airlock</title>
        <link rel="stylesheet" href="/assets/style.css" />
      </head>
      <body>
        ${body}
      </body>
    </html> `.text;
}

/** The signed-in frame: skip link, site navigation with the current page marked, the account's forms. */
export function page(options: {
  title: string;
  path: string;
  session: ConsoleSession;
  body: SafeHtml;
}): string {
  const { session } = options;
  const links = NAV.map(
    (item) =>
      html`<li>
        <a href="${item.href}" ${item.href === options.path ? html` aria-current="page"` : ""}
          >${item.label}</a
        >
      </li>`,
  );
  return document(
    options.title,
    html`<a class="skip" href="#main">Skip to content</a>
      <header>
        <p class="brand">Airlock</p>
        <nav aria-label="Console">
          <ul>
            ${links}
          </ul>
        </nav>
        <div class="account">
          <span>${session.user.name} <span class="muted">(${session.user.role})</span></span>
          <a href="/password">Change password</a>
          <form method="post" action="/logout">
            <input type="hidden" name="_csrf" value="${session.csrfToken}" />
            <button class="link" type="submit">Sign out</button>
          </form>
        </div>
      </header>
      <main id="main">
        <h1>${options.title}</h1>
        ${options.body}
      </main>`,
  );
}

/** A page outside the signed-in frame: login, and errors before a session exists. */
export function barePage(title: string, body: SafeHtml): string {
  return document(
    title,
    html`<main id="main" class="login">
      <h1>${title}</h1>
      ${body}
    </main>`,
  );
}

/**
 * A table of records: one header row, and each cell labelled with its column so that below 600 px
 * the rows stack as cards (the stylesheet shows the label) instead of scrolling sideways.
 */
export function dataTable(options: {
  caption: SafeHtml | string;
  columns: string[];
  rows: SafeHtml[][];
}): SafeHtml {
  const head = options.columns.map((column) => html`<th scope="col">${column}</th>`);
  const rows = options.rows.map(
    (cells) =>
      html`<tr>
        ${cells.map((cell, i) => html`<td data-label="${options.columns[i]}">${cell}</td>`)}
      </tr>`,
  );
  return html`<div class="table-wrap">
    <table class="records">
      <caption>
        ${options.caption}
      </caption>
      <thead>
        <tr>
          ${head}
        </tr>
      </thead>
      <tbody>
        ${rows}
      </tbody>
    </table>
  </div>`;
}
