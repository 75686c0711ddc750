import { chmod, chown, mkdir, writeFile } from "node:fs/promises";
import { dirname, join, normalize } from "node:path";
import type { PodContext } from "../node-api.js";
import { ContainerConfigError, objectValue } from "./env.js";
import type { KeyToPath, ObjectSource, PodSpec, Volume } from "./pod-spec.js";

/** A pod volume on the host: the directory bind-mounted into its containers. */
export interface HostVolume {
  path: string;
  /** ConfigMap, Secret and projected volumes are read-only to containers, as under kubelet. */
  readOnly: boolean;
}

const DEFAULT_MODE = 0o644;

interface FileToWrite {
  path: string;
  content: Buffer;
  mode: number;
}

/** The files of one ConfigMap or Secret source: every key, or the `items` it names, with their modes. */
function sourceFiles(
  kind: "ConfigMap" | "Secret",
  source: ObjectSource,
  namespace: string,
  defaultMode: number,
  context: PodContext,
): FileToWrite[] {
  const name = (kind === "Secret" ? source.secretName : undefined) ?? source.name ?? "";
  const object = context.get({ apiVersion: "v1", kind, name, namespace });
  if (object === undefined) {
    if (source.optional === true) return [];
    throw new ContainerConfigError(`${kind.toLowerCase()} "${name}" not found`);
  }
  const keys = [
    ...Object.keys((object.data as Record<string, string> | undefined) ?? {}),
    ...Object.keys((object.binaryData as Record<string, string> | undefined) ?? {}),
  ];
  const items: KeyToPath[] = source.items ?? keys.map((key) => ({ key, path: key }));
  return items.map((item) => {
    const content = objectValue(object, item.key);
    if (content === undefined) {
      throw new ContainerConfigError(`couldn't find key ${item.key} in ${kind} ${namespace}/${name}`);
    }
    const path = normalize(item.path);
    if (path.startsWith("..") || path.startsWith("/")) {
      throw new ContainerConfigError(`item path ${item.path} of ${kind} ${name} leaves its volume`);
    }
    return { path, content, mode: item.mode ?? source.defaultMode ?? defaultMode };
  });
}

function volumeFiles(volume: Volume, namespace: string, context: PodContext): FileToWrite[] | undefined {
  if (volume.configMap !== undefined)
    return sourceFiles("ConfigMap", volume.configMap, namespace, DEFAULT_MODE, context);
  if (volume.secret !== undefined)
    return sourceFiles("Secret", volume.secret, namespace, DEFAULT_MODE, context);
  if (volume.projected !== undefined) {
    const mode = volume.projected.defaultMode ?? DEFAULT_MODE;
    return volume.projected.sources.flatMap((source) =>
      source.configMap !== undefined
        ? sourceFiles("ConfigMap", { ...source.configMap, defaultMode: undefined }, namespace, mode, context)
        : source.secret !== undefined
          ? sourceFiles("Secret", { ...source.secret, defaultMode: undefined }, namespace, mode, context)
          : [],
    );
  }
  return undefined;
}

/**
 * Makes the pod's volumes under `podDir` (ConfigMap/Secret/projected as files, emptyDir as a
 * directory) and its claims under `claimsDir/<namespace>/<claim>`, which outlive the pod. With an
 * fsGroup, files and directories belong to that group, as kubelet's volume ownership makes them.
 */
export async function prepareVolumes(
  spec: PodSpec,
  namespace: string,
  podDir: string,
  claimsDir: string,
  context: PodContext,
): Promise<Map<string, HostVolume>> {
  const group = spec.securityContext?.fsGroup;
  const volumes = new Map<string, HostVolume>();
  for (const volume of spec.volumes ?? []) {
    const files = volumeFiles(volume, namespace, context);
    if (files !== undefined) {
      const dir = join(podDir, "volumes", volume.name);
      await mkdir(dir, { recursive: true, mode: 0o755 });
      for (const file of files) {
        const path = join(dir, file.path);
        await mkdir(dirname(path), { recursive: true, mode: 0o755 });
        await writeFile(path, file.content, { mode: file.mode });
        await chmod(path, file.mode);
        if (group !== undefined) await chown(path, 0, group);
      }
      volumes.set(volume.name, { path: dir, readOnly: true });
    } else if (volume.emptyDir !== undefined || volume.persistentVolumeClaim !== undefined) {
      const claim = volume.persistentVolumeClaim;
      const dir =
        claim === undefined
          ? join(podDir, "volumes", volume.name)
          : join(claimsDir, namespace, claim.claimName);
      await mkdir(dir, { recursive: true });
      // emptyDir is world-writable; a claim is its fsGroup's, setgid so that new files stay in it.
      if (group === undefined) await chmod(dir, 0o777);
      else {
        await chown(dir, 0, group);
        await chmod(dir, 0o2775);
      }
      volumes.set(volume.name, { path: dir, readOnly: claim?.readOnly === true });
    } else {
      throw new ContainerConfigError(
        `volume ${volume.name}: only configMap, secret, projected, emptyDir and persistentVolumeClaim are supported by this node`,
      );
    }
  }
  return volumes;
}
