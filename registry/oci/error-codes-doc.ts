import { ERROR_CODES, type ErrorCode, type ErrorCodeInfo } from "./error-codes.js";

const HEADER = `# Error codes

Every code Airlock reports, one line each, sorted: search this page for the code you saw. Generated
from \`registry/oci/error-codes.ts\` by \`npm run build && node scripts/write-error-codes.mjs\`; a
unit test fails when the two differ.

- **exit**: the status \`airlock\` exits with: 2 for a usage error (fix the command line, or the file
  you wrote), 1 for any other failure. An interrupted command exits 130.
- **retryable**: the same command or request may succeed run again unchanged (a busy lock, the
  network, a service not ready yet). Without it, something must change first.
- **HTTP**: the status Airlock answers the code with over HTTP: the registry (\`OCI\`: a code of the
  distribution spec, in the registry's error bodies; the store's failures), the console (its \`UI_*\`
  codes; what it does not find, 404; a conflict with what the site is doing or holds now, 409; a
  code without a status here is 400 if a usage error, else 500) and the in-memory API server
  (\`CLUSTER_*\`).

With \`--json\`, a failed command prints \`{ "error": { "code", "message", "where", "hint" } }\`.

`;

function line(code: ErrorCode, info: ErrorCodeInfo): string {
  const facts = [
    `exit ${info.exitCode}`,
    ...(info.retryable ? ["retryable"] : []),
    ...(info.http === undefined ? [] : [`HTTP ${info.http}`, ...(info.oci === true ? ["OCI"] : [])]),
  ];
  return `- \`${code}\` (${facts.join(", ")}): ${info.summary}`;
}

/** docs/errors.md: every code of the table, sorted, one line each. */
export function errorCodesMarkdown(): string {
  const codes = (Object.keys(ERROR_CODES) as ErrorCode[]).sort();
  return HEADER + codes.map((code) => line(code, ERROR_CODES[code])).join("\n") + "\n";
}
