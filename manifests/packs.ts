import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { AirlockError, type ErrorCode } from "../registry/oci/index.js";
import { RELEASE_LABEL } from "./render.js";

/**
 * A pack: `pack.yaml` (name, version), `values.yaml` (its defaults) and Kubernetes YAML under
 * `templates/`, whose `{{ .Values.path }}`, `{{ .Pack.Name }}`, `{{ .Pack.Version }}` and
 * `{{ .Release.Name }}` are filled in before the YAML is read. Nothing else is a template: a pack is
 * configuration, not a program, so a variable the pack does not define is an error, never "".
 */
export interface Pack {
  name: string;
  version: string;
  values: Record<string, unknown>;
  templates: { path: string; text: string }[];
}

export interface KubernetesObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [key: string]: unknown };
  [key: string]: unknown;
}

export interface PackRenderOptions {
  /** Site values over the pack's defaults, merged key by key. */
  values?: Record<string, unknown>;
  release: string;
  /** Objects without a namespace get this one. */
  namespace?: string;
}

const VARIABLE = /\{\{\s*([^{}]*?)\s*\}\}/g;
const PATH = /^\.(Values|Pack|Release)((?:\.[A-Za-z_][A-Za-z0-9_-]*)*)$/;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const current = out[key];
    out[key] = isRecord(current) && isRecord(value) ? merge(current, value) : value;
  }
  return out;
}

function templateError(code: ErrorCode, message: string, where: string, hint: string): AirlockError {
  return new AirlockError(code, message, { where, hint });
}

/** The text of one template with its variables filled in; `where` is `pack/path`. */
function fill(text: string, where: string, scope: Record<string, Record<string, unknown>>): string {
  return text.replace(VARIABLE, (whole: string, expression: string, offset: number) => {
    const line = text.slice(0, offset).split("\n").length;
    const at = `${where}:${line}`;
    const match = PATH.exec(expression);
    if (match === null) {
      throw templateError(
        "PACK_TEMPLATE_INVALID",
        `${whole} is not a variable`,
        at,
        "templates only substitute {{ .Values.name }}, {{ .Pack.Name }}, {{ .Pack.Version }} and {{ .Release.Name }}",
      );
    }
    let value: unknown = scope[match[1]!];
    for (const key of match[2]!.split(".").slice(1)) value = isRecord(value) ? value[key] : undefined;
    if (value === undefined || value === null) {
      throw templateError(
        "PACK_TEMPLATE_VARIABLE_UNKNOWN",
        `${expression} is not defined`,
        at,
        "define it in the pack's values.yaml (or the site's values), or fix the name in the template",
      );
    }
    if (typeof value !== "string" && typeof value !== "number" && typeof value !== "boolean") {
      throw templateError(
        "PACK_TEMPLATE_VARIABLE_INVALID",
        `${expression} is a ${Array.isArray(value) ? "list" : typeof value === "object" ? "map" : typeof value}, not a single value`,
        at,
        "only strings, numbers and booleans can be substituted",
      );
    }
    return String(value);
  });
}

function checkObject(value: unknown, where: string): KubernetesObject {
  const metadata = isRecord(value) ? value.metadata : undefined;
  if (
    !isRecord(value) ||
    typeof value.apiVersion !== "string" ||
    typeof value.kind !== "string" ||
    !isRecord(metadata) ||
    typeof metadata.name !== "string"
  ) {
    throw templateError(
      "PACK_TEMPLATE_INVALID",
      "a document is not a Kubernetes object (apiVersion, kind, metadata.name)",
      where,
      "each YAML document of a template must be one Kubernetes object",
    );
  }
  return value as KubernetesObject;
}

/** A pack's objects, in template order, labelled as Airlock's and the pack's. Pure. */
export function renderPack(pack: Pack, options: PackRenderOptions): KubernetesObject[] {
  const scope = {
    Values: merge(pack.values, options.values ?? {}),
    Pack: { Name: pack.name, Version: pack.version },
    Release: { Name: options.release },
  };
  const objects: KubernetesObject[] = [];
  for (const template of [...pack.templates].sort((a, b) => a.path.localeCompare(b.path))) {
    const where = `${pack.name}/${template.path}`;
    for (const document of parseAllDocuments(fill(template.text, where, scope))) {
      if (document.errors.length > 0) {
        throw templateError(
          "PACK_TEMPLATE_INVALID",
          `the filled-in template is not YAML: ${document.errors[0]!.message}`,
          where,
          "check the template's YAML, and quote substituted values that may contain ':' or '#'",
        );
      }
      const value: unknown = document.toJS();
      if (value === null) continue;
      const object = checkObject(value, where);
      objects.push({
        ...object,
        metadata: {
          ...object.metadata,
          ...(options.namespace === undefined || object.metadata.namespace !== undefined
            ? {}
            : { namespace: options.namespace }),
          labels: {
            ...object.metadata.labels,
            "app.kubernetes.io/managed-by": "airlock",
            "app.kubernetes.io/part-of": pack.name,
            "app.kubernetes.io/version": pack.version,
            [RELEASE_LABEL]: options.release,
          },
        },
      });
    }
  }
  return objects;
}

/** Reads a pack directory (as `bundle.yaml`'s `packs:` names it, or as unpacked from the store). */
export async function readPack(dir: string): Promise<Pack> {
  const read = async (name: string): Promise<unknown> => {
    const path = join(dir, name);
    try {
      return parseYaml(await readFile(path, "utf8")) as unknown;
    } catch (error) {
      throw new AirlockError("PACK_INVALID", `cannot read ${name}: ${(error as Error).message}`, {
        where: path,
        hint: "a pack is a directory with pack.yaml (name, version), values.yaml and templates/",
      });
    }
  };
  const meta = await read("pack.yaml");
  if (!isRecord(meta) || typeof meta.name !== "string" || typeof meta.version !== "string") {
    throw new AirlockError("PACK_INVALID", "pack.yaml needs a name and a version", {
      where: join(dir, "pack.yaml"),
      hint: "write `name: NAME` and `version: X.Y.Z`",
    });
  }
  const values = (await read("values.yaml")) ?? {};
  if (!isRecord(values)) {
    throw new AirlockError("PACK_INVALID", "values.yaml is not a map", { where: join(dir, "values.yaml") });
  }
  const names = (await readdir(join(dir, "templates"))).filter((name) => /\.ya?ml$/.test(name)).sort();
  const templates = await Promise.all(
    names.map(async (name) => ({
      path: `templates/${name}`,
      text: await readFile(join(dir, "templates", name), "utf8"),
    })),
  );
  return { name: meta.name, version: meta.version, values, templates };
}
