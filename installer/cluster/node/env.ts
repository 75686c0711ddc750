import type { ClusterObject } from "../client.js";
import type { PodContext } from "../node-api.js";
import type { ImageConfig } from "./images.js";
import type { Container, EnvVar } from "./pod-spec.js";

/** What keeps a container from being created (kubelet's CreateContainerConfigError). */
export class ContainerConfigError extends Error {}

export interface PodFields {
  name: string;
  namespace: string;
  uid: string;
  podIP: string;
}

/** A key of a ConfigMap (`data`, `binaryData`) or Secret (`data`, base64; `stringData`). */
export function objectValue(object: ClusterObject, key: string): Buffer | undefined {
  const data = object.data as Record<string, string> | undefined;
  if (object.kind === "Secret") {
    const value = data?.[key];
    if (value !== undefined) return Buffer.from(value, "base64");
    const plain = (object.stringData as Record<string, string> | undefined)?.[key];
    return plain === undefined ? undefined : Buffer.from(plain, "utf8");
  }
  if (data?.[key] !== undefined) return Buffer.from(data[key], "utf8");
  const binary = (object.binaryData as Record<string, string> | undefined)?.[key];
  return binary === undefined ? undefined : Buffer.from(binary, "base64");
}

function fieldValue(fieldPath: string, pod: PodFields): string {
  const fields: Record<string, string> = {
    "metadata.name": pod.name,
    "metadata.namespace": pod.namespace,
    "metadata.uid": pod.uid,
    "status.podIP": pod.podIP,
  };
  const value = fields[fieldPath];
  if (value === undefined)
    throw new ContainerConfigError(`fieldRef ${fieldPath} is not supported by this node`);
  return value;
}

function keyRefValue(
  context: PodContext,
  namespace: string,
  kind: "ConfigMap" | "Secret",
  ref: { name: string; key: string; optional?: boolean },
): string | undefined {
  const object = context.get({ apiVersion: "v1", kind, name: ref.name, namespace });
  const value = object === undefined ? undefined : objectValue(object, ref.key);
  if (value === undefined && ref.optional !== true) {
    throw new ContainerConfigError(
      object === undefined
        ? `${kind.toLowerCase()} "${ref.name}" not found`
        : `couldn't find key ${ref.key} in ${kind} ${namespace}/${ref.name}`,
    );
  }
  return value?.toString("utf8");
}

/** `$(NAME)` expanded from `vars` as Kubernetes does: unknown names stay, `$$` is a literal `$`. */
export function expand(text: string, vars: ReadonlyMap<string, string>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (match, name: string | undefined) =>
    name === undefined ? "$" : (vars.get(name) ?? match),
  );
}

/** The container's environment: the image's, then the pod's in order, each able to refer to those before it. */
export function containerEnv(
  container: Container,
  image: ImageConfig,
  pod: PodFields,
  context: PodContext,
): Map<string, string> {
  const vars = new Map<string, string>();
  for (const entry of image.Env ?? []) {
    const at = entry.indexOf("=");
    if (at > 0) vars.set(entry.slice(0, at), entry.slice(at + 1));
  }
  const declared = new Map<string, string>();
  for (const variable of container.env ?? []) {
    const value = envValue(variable, pod, context, declared);
    if (value !== undefined) {
      declared.set(variable.name, value);
      vars.set(variable.name, value);
    }
  }
  return vars;
}

function envValue(
  variable: EnvVar,
  pod: PodFields,
  context: PodContext,
  declared: ReadonlyMap<string, string>,
): string | undefined {
  const from = variable.valueFrom;
  if (from?.fieldRef !== undefined) return fieldValue(from.fieldRef.fieldPath, pod);
  if (from?.configMapKeyRef !== undefined)
    return keyRefValue(context, pod.namespace, "ConfigMap", from.configMapKeyRef);
  if (from?.secretKeyRef !== undefined)
    return keyRefValue(context, pod.namespace, "Secret", from.secretKeyRef);
  return expand(variable.value ?? "", declared);
}

/** The process: `command` replaces the image's entrypoint, `args` its cmd, both expanded from the env. */
export function containerArgs(
  container: Container,
  image: ImageConfig,
  env: ReadonlyMap<string, string>,
): string[] {
  const entrypoint = container.command ?? image.Entrypoint ?? [];
  const args = container.args ?? (container.command === undefined ? (image.Cmd ?? []) : []);
  const all = [...entrypoint, ...args].map((arg) => expand(arg, env));
  if (all.length === 0) throw new ContainerConfigError("no command specified");
  return all;
}
