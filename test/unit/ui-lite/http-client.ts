/** A console client for tests: one cookie jar, no redirects followed, forms posted as a browser does. */
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface Reply {
  status: number;
  location: string | null;
  body: string;
  setCookies: string[];
}

export class ConsoleClient {
  readonly cookies = new Map<string, string>();
  constructor(readonly base: string) {}

  async request(
    method: string,
    path: string,
    form?: Record<string, string>,
    headers: Record<string, string> = {},
  ): Promise<Reply> {
    const cookie = [...this.cookies].map(([name, value]) => `${name}=${value}`).join("; ");
    const response = await fetch(this.base + path, {
      method,
      redirect: "manual",
      headers: {
        ...(cookie === "" ? {} : { cookie }),
        ...(form === undefined ? {} : { "content-type": "application/x-www-form-urlencoded" }),
        ...headers,
      },
      body: form === undefined ? undefined : new URLSearchParams(form).toString(),
    });
    const setCookies = response.headers.getSetCookie();
    for (const line of setCookies) {
      const [pair] = line.split(";");
      const eq = pair!.indexOf("=");
      const name = pair!.slice(0, eq);
      const value = pair!.slice(eq + 1);
      if (value === "" || /Max-Age=0/.test(line)) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return {
      status: response.status,
      location: response.headers.get("location"),
      body: await response.text(),
      setCookies,
    };
  }

  get(path: string): Promise<Reply> {
    return this.request("GET", path);
  }

  /** The hidden `_csrf` value of the last page's forms. */
  static csrfOf(body: string): string {
    const match = /name="_csrf" value="([^"]+)"/.exec(body);
    if (match === null) throw new Error("no CSRF field on the page");
    return match[1]!;
  }

  /** Signs in through the form, as a browser does: the form's token, then the post. */
  async login(name: string, password: string): Promise<Reply> {
    const form = await this.get("/login");
    return this.request("POST", "/login", { _csrf: ConsoleClient.csrfOf(form.body), name, password });
  }
}

/** A user added with `role`, signed in, their one-time password changed to `password`. */
export async function signInAs(
  client: ConsoleClient,
  users: { add(name: string, role: "admin" | "viewer"): Promise<{ password: string }> },
  name: string,
  role: "admin" | "viewer",
  password = `a long enough password for ${name}`,
): Promise<void> {
  const { password: once } = await users.add(name, role);
  await client.login(name, once);
  const form = await client.get("/password");
  await client.request("POST", "/password", {
    _csrf: ConsoleClient.csrfOf(form.body),
    current: once,
    next: password,
    again: password,
  });
}

export async function listenLocal(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}
