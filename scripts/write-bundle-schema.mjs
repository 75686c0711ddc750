// Regenerates bundle/bundle.schema.json from the zod schema in bundle/spec.ts; run after `npm run build`.
import { writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { format, resolveConfig } from "prettier";
import { bundleSpecJsonSchema } from "../dist/bundle/spec.js";

const target = fileURLToPath(new URL("../bundle/bundle.schema.json", import.meta.url));
// Formatted as prettier would, so `npm run format:check` accepts the generated file.
const options = { ...(await resolveConfig(target)), filepath: target };
await writeFile(target, await format(JSON.stringify(bundleSpecJsonSchema(), null, 2), options));
