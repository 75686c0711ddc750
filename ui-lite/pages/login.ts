import { html, type SafeHtml } from "../html.js";
import { barePage, page } from "../layout.js";
import { MIN_PASSWORD_LENGTH } from "../passwords.js";
import type { ConsoleSession } from "../sessions.js";

const message = (error: string | undefined, role = "alert"): SafeHtml =>
  error === undefined ? html`` : html`<p class="error" role="${role}">${error}</p>`;

export function loginPage(options: { token: string; error?: string; name?: string }): string {
  return barePage(
    "Sign in to Airlock",
    html`${message(options.error)}
      <form class="stack" method="post" action="/login">
        <input type="hidden" name="_csrf" value="${options.token}" />
        <label
          >User name
          <input name="name" autocomplete="username" required value="${options.name ?? ""}" autofocus
        /></label>
        <label
          >Password <input name="password" type="password" autocomplete="current-password" required
        /></label>
        <button type="submit">Sign in</button>
      </form>`,
  );
}

export function passwordPage(session: ConsoleSession, error?: string): string {
  const forced = session.user.mustChangePassword
    ? html`<p class="notice" role="status">
        You signed in with a one-time password: choose your own to continue.
      </p>`
    : html``;
  return page({
    title: "Change password",
    path: "/password",
    session,
    body: html`${forced}${message(error)}
      <form class="stack" method="post" action="/password">
        <input type="hidden" name="_csrf" value="${session.csrfToken}" />
        <label
          >Current password <input name="current" type="password" autocomplete="current-password" required
        /></label>
        <label
          >New password
          <input
            name="next"
            type="password"
            autocomplete="new-password"
            minlength="${MIN_PASSWORD_LENGTH}"
            required
            aria-describedby="next-help"
        /></label>
        <p id="next-help" class="muted">At least ${MIN_PASSWORD_LENGTH} characters.</p>
        <label
          >New password again <input name="again" type="password" autocomplete="new-password" required
        /></label>
        <button type="submit">Change password</button>
      </form>`,
  });
}
