/**
 * The containerd node for MemoryCluster: a test double for tests and the demo, never imported by a
 * customer-side command. Pods run as containerd containers pulled through registries.yaml's mirrors.
 */
export { ContainerdNode, createContainerdNode } from "./containerd-node.js";
export type { ContainerdNodeOptions, NodeLeftovers } from "./containerd-node.js";
export type { NodeEvent } from "./container-worker.js";
export { hostsTomlFiles, parseRegistriesYaml, pullCredentials } from "./registries.js";
export { NodeRegistries } from "./node-registries.js";
export type { RegistriesConfig } from "./registries.js";
export { KUBELET_BACKOFF } from "./backoff.js";
export type { BackoffOptions } from "./backoff.js";
