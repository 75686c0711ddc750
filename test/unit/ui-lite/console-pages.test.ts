/** The read-only pages over loopback HTTP: what they show, their paging and filters, and bad parameters. */
import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openConsoleSite, type ConsoleSite } from "./console-site.js";
import { ConsoleClient, listenLocal, signInAs } from "./http-client.js";

let site: ConsoleSite;
let server: Server;
let client: ConsoleClient;

beforeAll(async () => {
  site = await openConsoleSite({ tags: 1_000 });
  server = createServer(site.app);
  client = new ConsoleClient(await listenLocal(server));
  await signInAs(client, site.users, "alice", "admin");
  for (let i = 0; i < 120; i++) {
    site.state.events.append({
      action: "bundle.import",
      object: `bundle/${i}`,
      outcome: i % 3 === 0 ? "failed" : "ok",
    });
  }
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await site.close();
});

describe("the console's pages", () => {
  it("pages 1,003 tags 100 at a time, and refuses a page that is not a number", async () => {
    const first = await client.get("/images");
    expect(first.body).toContain("1003 tags in 1000 repositories; page 1 of 11");
    expect(first.body.match(/data-label="Repository"/g)).toHaveLength(100);
    expect(first.body).toContain('href="/images?page=2"');
    const last = await client.get("/images?page=11");
    expect(last.body.match(/data-label="Repository"/g)).toHaveLength(3);
    expect(last.body).not.toContain("Next page");
    for (const page of ["abc", "0", "-1", "1e3"]) {
      expect([page, (await client.get(`/images?page=${page}`)).status]).toEqual([page, 400]);
    }
  });

  it("filters events by action and outcome, newest first, with a link to older ones", async () => {
    const failed = await client.get("/events?action=bundle.import&outcome=failed");
    const objects = [...failed.body.matchAll(/<code>(bundle\/\d+)<\/code>/g)].map((m) => m[1]);
    expect(objects).toHaveLength(40);
    expect(objects[0]).toBe("bundle/117");
    const page1 = await client.get("/events?action=bundle.import");
    const older = /href="(\/events\?action=bundle.import&amp;before=\d+)"/.exec(page1.body);
    expect(older).not.toBeNull();
    const page2 = await client.get(older![1]!.replace("&amp;", "&"));
    const second = [...page2.body.matchAll(/<code>(bundle\/\d+)<\/code>/g)].map((m) => m[1]);
    expect(second[0]).toBe("bundle/69");
    expect((await client.get("/events?object=bundle/")).body).toContain("bundle/119");
    expect((await client.get("/events?outcome=maybe")).status).toBe(400);
  });

  it("shows bundles with their signature, certificates with SANs and days left, and answers 404 for no page", async () => {
    const bundles = await client.get("/bundles");
    expect(bundles.body).toContain("4.5.0");
    expect(bundles.body).toContain('class="status-verified"');
    const certificates = await client.get("/certificates");
    expect(certificates.body).toContain("DNS:registry.site.example");
    expect(certificates.body).toContain("Europe/Berlin");
    expect((await client.get("/no/such/page")).status).toBe(404);
  });
});
