import { describeBlobStoreContract } from "./blob-store.contract.js";
import { MemoryBlobStore } from "./memory-blob-store.js";

describeBlobStoreContract("MemoryBlobStore", () => {
  const blobs = new MemoryBlobStore();
  return Promise.resolve({ reader: blobs, writer: blobs, cleanup: () => Promise.resolve() });
});
