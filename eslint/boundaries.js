// The folder boundaries of DESIGN.md "Layout", checked on every relative import: each library is a
// folder with one public index.ts, and a library imports another only through it, and only along
// an edge of the table below. Tests, scripts and benchmarks are not libraries and may import internals.
import path from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

const registry = ["registry/oci", "registry/store", "registry/client", "registry/server"];
const belowInstaller = [...registry, "bundle", "manifests"];
// The installer's building blocks, which install and upgrade put together.
const installerParts = [
  "installer/host",
  "installer/pki",
  "installer/state",
  "installer/preflight",
  "installer/cluster",
  "installer/k3s",
];
const installerFlows = ["installer/install", "installer/upgrade"];

/**
 * Library folder → the libraries it may import. The one-way direction of DESIGN.md:
 * `registry/oci` ← `registry/store` ← `bundle`, `registry/server`, `registry/client` ← `installer` →
 * `manifests`; `ui-lite` → all. Where DESIGN.md's line is silent:
 * - `bundle` uses `registry/client` to pull registry sources and to mirror; `registry/client` and
 *   `registry/server` never import each other or `bundle`.
 * - `manifests` is pure data and functions: only `registry/oci` (its errors and references).
 * - inside `installer/`, the parts (host, pki, state: leaves; cluster → host; preflight → state, host;
 *   k3s → host, pki, cluster) are
 *   put together by the flows (install → parts; upgrade → parts and install); `ui-lite` drives the
 *   flows; `installer/daemon` serves `ui-lite`; `installer/cli` sits on top of everything.
 */
export const LIBRARIES = {
  "registry/oci": [],
  "registry/store": ["registry/oci"],
  "registry/client": ["registry/oci", "registry/store"],
  "registry/server": ["registry/oci", "registry/store"],
  bundle: ["registry/oci", "registry/store", "registry/client"],
  manifests: ["registry/oci"],
  "installer/host": belowInstaller,
  "installer/pki": belowInstaller,
  "installer/state": belowInstaller,
  "installer/cluster": [...belowInstaller, "installer/host"],
  "installer/preflight": [...belowInstaller, "installer/state", "installer/host"],
  "installer/k3s": [...belowInstaller, "installer/host", "installer/pki", "installer/cluster"],
  "installer/install": [...belowInstaller, ...installerParts],
  "installer/upgrade": [...belowInstaller, ...installerParts, "installer/install"],
  "ui-lite": [...belowInstaller, ...installerParts, ...installerFlows],
  "installer/daemon": [...belowInstaller, ...installerParts, ...installerFlows, "ui-lite"],
  "installer/cli": [...belowInstaller, ...installerParts, ...installerFlows, "ui-lite", "installer/daemon"],
};

/** Top-level folders whose every file belongs to a library of the table. */
export const SOURCE_FOLDERS = ["registry", "bundle", "manifests", "installer", "ui-lite"];

/** The libraries in an order where each comes after all it imports; throws on a cycle. */
export function dependencyOrder(table) {
  const order = [];
  const state = new Map();
  const visit = (library, trail) => {
    if (state.get(library) === "done") return;
    if (state.get(library) === "visiting") {
      throw new Error(`boundary table has a cycle: ${[...trail, library].join(" → ")}`);
    }
    state.set(library, "visiting");
    for (const dependency of table[library] ?? []) visit(dependency, [...trail, library]);
    state.set(library, "done");
    order.push(library);
  };
  for (const library of Object.keys(table)) visit(library, []);
  return order;
}

// A cyclic table would allow what DESIGN.md forbids; refuse it before linting anything.
dependencyOrder(LIBRARIES);

const librariesByDepth = Object.keys(LIBRARIES).sort((a, b) => b.length - a.length);

function libraryOf(repoPath) {
  return librariesByDepth.find((library) => repoPath === library || repoPath.startsWith(`${library}/`));
}

function toRepoPath(absolute) {
  return path.relative(repoRoot, absolute).split(path.sep).join("/");
}

function isPublicSurface(repoPath, library) {
  return repoPath.replace(/\.(js|ts|mjs|mts)$/, "") === `${library}/index`;
}

function checkSpecifier(context, node, importer) {
  if (node?.type !== "Literal" || typeof node.value !== "string") return;
  const specifier = node.value;
  if (!specifier.startsWith(".") && !path.isAbsolute(specifier)) return;
  const target = toRepoPath(path.resolve(path.dirname(context.filename), specifier));
  const targetLibrary = libraryOf(target);
  if (targetLibrary === importer) return;
  if (targetLibrary === undefined) {
    context.report({ node, messageId: "outside", data: { specifier, importer } });
  } else if (!LIBRARIES[importer].includes(targetLibrary)) {
    const allowed = LIBRARIES[importer].join(", ") || "nothing";
    context.report({ node, messageId: "direction", data: { importer, target: targetLibrary, allowed } });
  } else if (!isPublicSurface(target, targetLibrary)) {
    context.report({ node, messageId: "internal", data: { specifier, target: targetLibrary } });
  }
}

/** @type {import("eslint").Rule.RuleModule} */
export const boundariesRule = {
  meta: {
    type: "problem",
    docs: { description: "libraries import each other only through index.ts, one way (DESIGN.md Layout)" },
    schema: [],
    messages: {
      internal: "'{{specifier}}' is internal to {{target}}: import {{target}}/index.js instead",
      direction:
        "{{importer}} may not import {{target}} (it may import: {{allowed}}); the table is in eslint/boundaries.js",
      outside:
        "'{{specifier}}' is in no library: {{importer}} imports only its own files and libraries' index.ts",
      unlisted: "{{file}} is in no library of the table in eslint/boundaries.js: add its folder there",
    },
  },
  create(context) {
    const file = toRepoPath(context.filename);
    const importer = libraryOf(file);
    if (importer === undefined) {
      const topFolder = file.split("/")[0];
      if (SOURCE_FOLDERS.includes(topFolder) && file.includes("/")) {
        return {
          Program(node) {
            context.report({ node, messageId: "unlisted", data: { file } });
          },
        };
      }
      return {};
    }
    const check = (node) => checkSpecifier(context, node.source, importer);
    return {
      ImportDeclaration: check,
      ExportNamedDeclaration: check,
      ExportAllDeclaration: check,
      ImportExpression: check,
      TSImportType(node) {
        // typescript-eslint 8 renamed `argument` (a literal type) to `source`.
        checkSpecifier(context, node.source ?? node.argument?.literal, importer);
      },
    };
  },
};

export default { meta: { name: "airlock" }, rules: { boundaries: boundariesRule } };
