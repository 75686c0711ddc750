// Imports a bundle into a data dir through the built library and holds the import, for good, in the
// middle of the Nth blob it writes (0-based, in tar order): once that blob's first chunk is on disk
// and every blob before it is in the store. Then prints "held" and waits to be SIGKILLed — the kill
// lands at an exact point, whatever the machine's speed.
//
//   node import-held.mjs DATA_DIR BUNDLE N
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { importBundle } from "../../dist/bundle/index.js";
import { Store, writeFully } from "../../dist/registry/store/index.js";

const [dataDir, bundle, nth] = process.argv.slice(2);
const holdAt = Number(nth);
const blobDir = join(dataDir, "store", "blobs", "sha256");
let blobsStarted = 0;

async function storedBlobs() {
  return (await readdir(blobDir).catch(() => [])).length;
}

async function hold() {
  // The earlier blobs' commits run behind the stream; wait (bounded) until they are all renamed in.
  const deadline = Date.now() + 60_000;
  while ((await storedBlobs()) < holdAt) {
    if (Date.now() > deadline) throw new Error(`only ${await storedBlobs()} of ${holdAt} blobs stored`);
    await delay(5);
  }
  process.stdout.write("held\n");
  await new Promise(() => {});
}

const store = await Store.open(dataDir, {
  writeChunk: async (handle, chunk, position) => {
    await writeFully(handle, chunk, position);
    // A blob's first chunk is the one written at 0 (its later blocks may go through another handle).
    if (position === 0 && ++blobsStarted === holdAt + 1) await hold();
  },
});
await importBundle(store, [bundle]);
process.stdout.write("finished\n");
store.close();
