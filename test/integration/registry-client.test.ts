/**
 * The registry client against small servers that behave as real registries do at their edges: a blob
 * served from elsewhere by redirect (object storage), and a damaged blob.
 */
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { RegistryClient } from "../../registry/client/index.js";
import { digestOf } from "../../registry/oci/index.js";

const servers: Server[] = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

async function serve(handler: Parameters<typeof createServer>[1]): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `127.0.0.1:${(server.address() as { port: number }).port}`;
}

async function collect(source: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of source) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

describe("RegistryClient.getBlob", () => {
  const blob = Buffer.from("layer bytes ".repeat(1000));
  const descriptor = { mediaType: "application/octet-stream", digest: digestOf(blob), size: blob.byteLength };

  it("follows a redirect to object storage without the registry's credentials", async () => {
    let storageSaw: IncomingHttpHeaders | undefined;
    const storage = await serve((req, res) => {
      storageSaw = req.headers;
      res.end(blob);
    });
    const registry = await serve((req, res) => {
      if (req.headers.authorization === undefined) {
        res.writeHead(401, { "WWW-Authenticate": 'Basic realm="r"' }).end();
        return;
      }
      res.writeHead(307, { Location: `http://${storage}/bucket/object?signature=x` }).end();
    });
    const client = new RegistryClient({
      host: registry,
      insecureHttp: true,
      credentials: { username: "u", password: "p" },
    });
    try {
      expect((await collect(client.getBlob("repo", descriptor))).equals(blob)).toBe(true);
      expect(storageSaw).toBeDefined();
      expect(storageSaw!.authorization).toBeUndefined();
    } finally {
      await client.close();
    }
  });

  it("a blob that does not hash to its digest is REGISTRY_DIGEST_MISMATCH, and its last bytes are never handed out", async () => {
    const registry = await serve((_req, res) => res.end(Buffer.concat([blob.subarray(1), Buffer.from("!")])));
    const client = new RegistryClient({ host: registry, insecureHttp: true });
    const handed: Buffer[] = [];
    try {
      await expect(
        (async () => {
          for await (const chunk of client.getBlob("repo", descriptor)) handed.push(Buffer.from(chunk));
        })(),
      ).rejects.toMatchObject({ code: "REGISTRY_DIGEST_MISMATCH" });
      expect(Buffer.concat(handed).byteLength).toBeLessThan(blob.byteLength);
    } finally {
      await client.close();
    }
  });

  describe("a blob of several MiB", () => {
    const MiB = 1024 * 1024;
    const large = Buffer.alloc(3 * MiB + 12345);
    for (let i = 0; i < large.byteLength; i += 4096) large.writeUInt32BE(i, i);
    const largeDescriptor = { ...descriptor, digest: digestOf(large), size: large.byteLength };

    it("is handed out in 1 MiB pieces and a remainder, though the server writes it in 8 KiB pieces", async () => {
      const registry = await serve((_req, res) => {
        res.writeHead(200, { "Content-Length": String(large.byteLength) });
        let at = 0;
        const send = (): void => {
          while (at < large.byteLength) {
            const piece = large.subarray(at, at + 8192);
            at += piece.byteLength;
            if (!res.write(piece)) {
              res.once("drain", send);
              return;
            }
          }
          res.end();
        };
        send();
      });
      const client = new RegistryClient({ host: registry, insecureHttp: true });
      const sizes: number[] = [];
      const chunks: Buffer[] = [];
      try {
        for await (const chunk of client.getBlob("repo", largeDescriptor)) {
          sizes.push(chunk.byteLength);
          chunks.push(Buffer.from(chunk));
        }
      } finally {
        await client.close();
      }
      expect(sizes).toEqual([MiB, MiB, MiB, 12345]);
      expect(Buffer.concat(chunks).equals(large)).toBe(true);
    });

    it("damaged in its last byte hands out at most all but its last two pieces before REGISTRY_DIGEST_MISMATCH", async () => {
      const damaged = Buffer.from(large);
      damaged[damaged.byteLength - 1]! ^= 0xff;
      const registry = await serve((_req, res) => res.end(damaged));
      const client = new RegistryClient({ host: registry, insecureHttp: true });
      let handed = 0;
      try {
        await expect(
          (async () => {
            for await (const chunk of client.getBlob("repo", largeDescriptor)) handed += chunk.byteLength;
          })(),
        ).rejects.toMatchObject({ code: "REGISTRY_DIGEST_MISMATCH" });
      } finally {
        await client.close();
      }
      expect(handed).toBe(2 * MiB);
    });
  });
});
