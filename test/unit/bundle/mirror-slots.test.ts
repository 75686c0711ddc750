/**
 * mirror's scheduling against a stand-in client: a blob two images share is pushed once, and the image
 * that waits for that push keeps no --concurrency slot while it waits.
 */
import { describe, expect, it } from "vitest";
import { mirror, type MirrorSource } from "../../../bundle/index.js";
import type { PushOutcome, RegistryClient } from "../../../registry/client/index.js";
import { digestOf, MediaType, type Descriptor, type Digest } from "../../../registry/oci/index.js";

const blobOf = (text: string): Descriptor => {
  const bytes = Buffer.from(text);
  return { mediaType: MediaType.OciLayerGzip, digest: digestOf(bytes), size: bytes.byteLength };
};

function imageManifest(config: Descriptor, layers: Descriptor[]): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: { ...config, mediaType: MediaType.OciConfig },
      layers,
    }),
  );
}

describe("mirror", () => {
  it("an image waiting for another's push of a shared blob holds no slot: its other blobs go meanwhile", async () => {
    const shared = blobOf("shared layer");
    const onlyB = blobOf("layer of b only");
    const manifests = new Map<Digest, Buffer>();
    const image = (name: string, layers: Descriptor[]) => {
      const bytes = imageManifest(blobOf(`config of ${name}`), layers);
      manifests.set(digestOf(bytes), bytes);
      return {
        ref: `hubble/${name}:1.0.0`,
        repository: `hubble/${name}`,
        tag: "1.0.0",
        digest: digestOf(bytes),
      };
    };
    const source: MirrorSource = {
      label: "stand-in source",
      images: [image("a", [shared]), image("b", [shared, onlyB])],
      manifest: (digest) => Promise.resolve(manifests.get(digest)!),
      // Never read: the stand-in client's pushBlob takes no bytes.
      blob: async function* () {},
      has: () => true,
    };

    // The shared blob's upload finishes only once b's own layer was pushed, or after 5 s if it never is.
    const pushes: { repository: string; digest: Digest; mountFrom: string | undefined }[] = [];
    let releaseShared: () => void = () => undefined;
    const sharedReleased = new Promise<void>((resolve) => {
      releaseShared = resolve;
      setTimeout(resolve, 5000).unref();
    });
    const events: string[] = [];
    const client = {
      host: "registry.test:5000",
      headManifest: () => Promise.resolve(undefined),
      headBlob: () => Promise.resolve(undefined),
      putManifest: () => Promise.resolve(),
      pushBlob: async (
        repository: string,
        descriptor: Descriptor,
        _body: unknown,
        options: { mountFrom?: string | undefined },
      ): Promise<PushOutcome> => {
        pushes.push({ repository, digest: descriptor.digest, mountFrom: options.mountFrom });
        if (descriptor.digest === onlyB.digest) {
          events.push("b's own layer pushed");
          releaseShared();
        }
        if (descriptor.digest === shared.digest && options.mountFrom === undefined) {
          await sharedReleased;
          events.push("shared layer pushed");
        }
        return options.mountFrom === undefined ? "uploaded" : "mounted";
      },
    } as unknown as RegistryClient;

    const result = await mirror({ source, client, prefix: "", concurrency: 2 });

    expect(result.failed).toBe(0);
    expect(events).toEqual(["b's own layer pushed", "shared layer pushed"]);
    const sharedPushes = pushes.filter((push) => push.digest === shared.digest);
    expect(sharedPushes).toEqual([
      { repository: "hubble/a", digest: shared.digest, mountFrom: undefined },
      { repository: "hubble/b", digest: shared.digest, mountFrom: "hubble/a" },
    ]);
  });
});
