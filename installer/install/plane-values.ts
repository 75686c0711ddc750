import { readFile } from "node:fs/promises";
import { parse } from "yaml";
import type { BundleHead } from "../../bundle/index.js";
import { parseValues, type Values } from "../../manifests/index.js";
import { AirlockError, errnoCode, type Digest } from "../../registry/oci/index.js";
import { Store } from "../../registry/store/index.js";

/** The plane's defaults a bundle carries, as the vendor wrote them. */
export const BUNDLE_VALUES_FILE = "manifests/values.yaml";
const MAX_VALUES_BYTES = 1024 * 1024;

type Plain = Record<string, unknown>;

function isPlain(value: unknown): value is Plain {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Maps merged key by key, the later winning; lists and scalars replaced whole. */
export function mergeValues(...layers: Plain[]): Plain {
  const merged: Plain = {};
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer)) {
      const before = merged[key];
      merged[key] = isPlain(before) && isPlain(value) ? mergeValues(before, value) : value;
    }
  }
  return merged;
}

function parseYamlValues(text: string, where: string): Plain {
  let document: unknown;
  try {
    document = parse(text);
  } catch (error) {
    throw new AirlockError("VALUES_INVALID", `not YAML: ${(error as Error).message}`, {
      where,
      hint: "write the values as a YAML map (see manifests/README.md for the fields)",
    });
  }
  if (document === null || document === undefined) return {};
  if (!isPlain(document)) {
    throw new AirlockError("VALUES_INVALID", "the values are not a map of fields", {
      where,
      hint: "write the values as a YAML map, e.g. `msgbroker: { replicas: 3 }`",
    });
  }
  return document;
}

/** Checks a layer alone, naming the file as well as the field when it is refused. */
function checked(layer: Plain, where: string): Plain {
  try {
    parseValues(layer);
  } catch (error) {
    if (error instanceof AirlockError && error.code === "VALUES_INVALID") {
      throw new AirlockError("VALUES_INVALID", `${where}: ${error.message}`, {
        where: `${where}: ${error.where ?? "values"}`,
        hint: error.hint,
      });
    }
    throw error;
  }
  return layer;
}

/** The operator's `--values` file, checked on its own before anything is written. */
export async function readOperatorValues(file: string | undefined): Promise<Plain> {
  if (file === undefined) return {};
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new AirlockError("VALUES_UNREADABLE", `cannot read the values file: ${(error as Error).message}`, {
      where: file,
      hint:
        errnoCode(error) === "ENOENT" ? "check the path given to --values" : "check the file's permissions",
    });
  }
  return checked(parseYamlValues(text, file), file);
}

/** The bundle's `manifests/values.yaml`, read from the store the import filled; `{}` when it has none. */
export async function readBundleValues(dataDir: string, head: BundleHead): Promise<Plain> {
  const file = head.metadata.files.find((entry) => entry.path === BUNDLE_VALUES_FILE);
  if (file === undefined) return {};
  const store = await Store.open(dataDir);
  try {
    const bytes = await store.blobs.readSmall(`sha256:${file.sha256}` as Digest, MAX_VALUES_BYTES);
    const where = `${head.input.label}: ${BUNDLE_VALUES_FILE}`;
    return checked(parseYamlValues(bytes.toString("utf8"), where), where);
  } finally {
    store.close();
  }
}

export interface PlaneValues {
  /** The operator's values as given. */
  given: Plain;
  /** Site defaults, then the bundle's, then the operator's: what is rendered. */
  input: Plain;
  values: Values;
}

/**
 * The values the plane is rendered with. The registry defaults to the address the cluster pulls
 * Airlock's registry from, so images are pinned there unless the bundle or operator names another.
 */
export async function planeValues(
  dataDir: string,
  head: BundleHead,
  operatorFile: string | undefined,
  pullEndpoint: string,
): Promise<PlaneValues> {
  const given = await readOperatorValues(operatorFile);
  const input = mergeValues({ registry: pullEndpoint }, await readBundleValues(dataDir, head), given);
  return { given, input, values: parseValues(input) };
}
