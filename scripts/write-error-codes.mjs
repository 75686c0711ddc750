// Regenerates docs/errors.md from the error-code table in registry/oci/error-codes.ts; run after `npm run build`.
import { writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { errorCodesMarkdown } from "../dist/registry/oci/error-codes-doc.js";

// The page is written as prettier leaves it, so `npm run format:check` accepts it unchanged.
await writeFile(fileURLToPath(new URL("../docs/errors.md", import.meta.url)), errorCodesMarkdown());
