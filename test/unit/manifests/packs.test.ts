import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readPack, renderPack, type Pack } from "../../../manifests/index.js";
import { AirlockError } from "../../../registry/oci/index.js";

const configMap = `apiVersion: v1
kind: ConfigMap
metadata:
  name: observability
data:
  retentionDays: "{{ .Values.retentionDays }}"
  scrapeInterval: "{{ .Values.scrape.interval }}"
  pack: "{{ .Pack.Name }}-{{ .Pack.Version }} in {{ .Release.Name }}"
`;

const pack = (templates: Record<string, string>): Pack => ({
  name: "observability",
  version: "0.1.0",
  values: { retentionDays: 7, scrape: { interval: "30s", timeout: "5s" } },
  templates: Object.entries(templates).map(([path, text]) => ({ path, text })),
});

function thrown(action: () => unknown): AirlockError {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(AirlockError);
    return error as AirlockError;
  }
  throw new Error("expected an AirlockError");
}

describe("renderPack", () => {
  it("fills values, pack and release variables, and labels every object as Airlock's and the pack's", () => {
    const [object, ...rest] = renderPack(pack({ "templates/configmap.yaml": configMap }), {
      release: "mgmt-4.5.0",
      namespace: "hubble-system",
    });
    expect(rest).toEqual([]);
    expect(object).toEqual({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: {
        name: "observability",
        namespace: "hubble-system",
        labels: {
          "app.kubernetes.io/managed-by": "airlock",
          "app.kubernetes.io/part-of": "observability",
          "app.kubernetes.io/version": "0.1.0",
          "airlock.dev/release": "mgmt-4.5.0",
        },
      },
      data: { retentionDays: "7", scrapeInterval: "30s", pack: "observability-0.1.0 in mgmt-4.5.0" },
    });
  });

  it("merges site values key by key over the pack's defaults, and keeps a namespace the template set", () => {
    const templates = {
      "templates/b.yaml": configMap.replace("name: observability", "name: b\n  namespace: monitoring"),
      "templates/a.yaml": "---\n" + configMap.replace("name: observability", "name: a") + "---\n",
    };
    const objects = renderPack(pack(templates), {
      release: "r",
      namespace: "hubble-system",
      values: { scrape: { interval: "10s" } },
    });
    expect(objects.map((o) => [o.metadata.name, o.metadata.namespace])).toEqual([
      ["a", "hubble-system"],
      ["b", "monitoring"],
    ]);
    expect(objects[0]!.data).toMatchObject({ retentionDays: "7", scrapeInterval: "10s" });
  });

  it("is pure: the same input renders deep-equal output twice", () => {
    const input = pack({ "templates/configmap.yaml": configMap });
    expect(renderPack(input, { release: "r" })).toEqual(renderPack(input, { release: "r" }));
  });

  it.each([
    [
      "an unknown variable",
      "{{ .Values.retention }}",
      "PACK_TEMPLATE_VARIABLE_UNKNOWN",
      "observability/templates/x.yaml:6",
    ],
    [
      "a map where a value belongs",
      "{{ .Values.scrape }}",
      "PACK_TEMPLATE_VARIABLE_INVALID",
      "observability/templates/x.yaml:6",
    ],
    [
      "an expression that is not a variable",
      "{{ range .Values }}",
      "PACK_TEMPLATE_INVALID",
      "observability/templates/x.yaml:6",
    ],
  ])("%s is a typed error naming template and line", (_what, expression, code, where) => {
    const error = thrown(() =>
      renderPack(pack({ "templates/x.yaml": configMap.replace("{{ .Values.retentionDays }}", expression) }), {
        release: "r",
      }),
    );
    expect(error.code).toBe(code);
    expect(error.where).toBe(where);
    expect(error.hint).toBeTruthy();
  });

  it("a document that is not a Kubernetes object, or not YAML after filling in, is PACK_TEMPLATE_INVALID", () => {
    expect(
      thrown(() => renderPack(pack({ "templates/x.yaml": "just: a map\n" }), { release: "r" })).code,
    ).toBe("PACK_TEMPLATE_INVALID");
    const broken = pack({ "templates/x.yaml": "apiVersion: v1\nkind: {{ .Values.scrape.interval }}: x\n" });
    expect(thrown(() => renderPack(broken, { release: "r" })).code).toBe("PACK_TEMPLATE_INVALID");
  });
});

describe("readPack", () => {
  it("reads pack.yaml, values.yaml and templates/*.yaml; refuses a pack.yaml without a version", async () => {
    const dir = await mkdtemp(join(tmpdir(), "airlock-pack-"));
    try {
      await mkdir(join(dir, "templates"));
      await writeFile(join(dir, "pack.yaml"), "name: observability\nversion: 0.1.0\n");
      await writeFile(join(dir, "values.yaml"), "retentionDays: 7\nscrape:\n  interval: 30s\n");
      await writeFile(join(dir, "templates", "configmap.yaml"), configMap);
      await writeFile(join(dir, "templates", "README.md"), "not a template");
      const read = await readPack(dir);
      expect(read).toEqual({
        name: "observability",
        version: "0.1.0",
        values: { retentionDays: 7, scrape: { interval: "30s" } },
        templates: [{ path: "templates/configmap.yaml", text: configMap }],
      });
      await writeFile(join(dir, "pack.yaml"), "name: observability\n");
      const error = await readPack(dir).catch((e: unknown) => e as AirlockError);
      expect(error).toBeInstanceOf(AirlockError);
      expect((error as AirlockError).code).toBe("PACK_INVALID");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
