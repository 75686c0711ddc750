import { isIP } from "node:net";
import { AirlockError } from "../../registry/oci/index.js";
import type { EnsuredCertificate, Pki } from "./pki.js";

/** The certificates the rest of Airlock needs, each as one ensure with the SANs its clients dial. */

export interface RegistryCertificateOptions {
  /** Every address the registry listens on or is reached by: names, IPs, either with `:port`. */
  hosts: string[];
  validityDays?: number;
}

export const REGISTRY_CERTIFICATE = "registry";

/** `registry.example:5443`, `10.0.0.5`, `[fd00::5]:5443` → the host alone. */
function hostOf(address: string): string {
  const trimmed = address.trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(trimmed);
  if (bracketed !== null) return bracketed[1]!;
  if (isIP(trimmed) === 6) return trimmed;
  const colon = trimmed.lastIndexOf(":");
  return colon === -1 ? trimmed : trimmed.slice(0, colon);
}

/** Hosts split by what they are: IP addresses become IP SANs, the rest DNS SANs. */
function splitHosts(hosts: string[]): { dnsNames: string[]; ipAddresses: string[] } {
  const dnsNames: string[] = [];
  const ipAddresses: string[] = [];
  for (const host of hosts.map(hostOf)) (isIP(host) === 0 ? dnsNames : ipAddresses).push(host);
  return { dnsNames, ipAddresses };
}

/** The registry's TLS certificate: every host it is reached by, and always localhost and 127.0.0.1. */
export function registryServerCertificate(
  pki: Pki,
  options: RegistryCertificateOptions,
): Promise<EnsuredCertificate> {
  const { dnsNames, ipAddresses } = splitHosts(options.hosts);
  return pki.ensureCertificate({
    name: REGISTRY_CERTIFICATE,
    kind: "server",
    commonName: "Airlock registry",
    dnsNames: ["localhost", ...dnsNames],
    ipAddresses: ["127.0.0.1", ...ipAddresses],
    validityDays: options.validityDays,
  });
}

export interface BrokerCertificateOptions {
  replicas: number;
  /** Ordinals beyond `replicas` the peer certificate covers, so scaling up needs no new certificate. */
  headroom?: number;
  namespace?: string;
  /** The client Service, also the StatefulSet's name and so its pods' name prefix. */
  service?: string;
  /** The headless Service that gives each pod its stable DNS name. */
  headless?: string;
  clusterDomain?: string;
  /** More names or IPs for both certificates (values' extra SANs). */
  extraSans?: string[];
  validityDays?: number;
}

export interface BrokerCertificates {
  /** Cluster routes: serverAuth and clientAuth, every ordinal's stable name. */
  peer: EnsuredCertificate;
  /** The client Service's TLS certificate. */
  server: EnsuredCertificate;
}

function countOption(value: number, name: string, min: number): number {
  if (!Number.isInteger(value) || value < min) {
    throw new AirlockError("PKI_SPEC_INVALID", `${name} ${value} is not a whole number of at least ${min}`, {
      where: name,
      hint: `give ${name} as a whole number, ${min} or more`,
    });
  }
  return value;
}

/** The msgbroker's route (peer) and client-service certificates, re-issued when replicas outgrow them. */
export async function brokerCertificates(
  pki: Pki,
  options: BrokerCertificateOptions,
): Promise<BrokerCertificates> {
  const replicas = countOption(options.replicas, "replicas", 1);
  const headroom = countOption(options.headroom ?? 2, "headroom", 0);
  const namespace = options.namespace ?? "hubble-system";
  const service = options.service ?? "msgbroker";
  const headless = options.headless ?? "msgbroker-headless";
  const clusterDomain = options.clusterDomain ?? "cluster.local";
  const extra = splitHosts(options.extraSans ?? []);
  // Each name both in-namespace-qualified (`….svc`) and fully qualified (`….svc.<cluster domain>`).
  const qualified = (name: string): string[] => [
    `${name}.${namespace}.svc`,
    `${name}.${namespace}.svc.${clusterDomain}`,
  ];
  const ordinalNames = (from: number, to: number): string[] =>
    Array.from({ length: to - from }, (_, i) => qualified(`${service}-${from + i}.${headless}`)).flat();
  const peerNames = [
    headless,
    `${headless}.${namespace}`,
    ...qualified(headless),
    ...qualified(`*.${headless}`),
    ...extra.dnsNames,
  ];

  const peer = await pki.ensureCertificate({
    name: `${service}-peer`,
    kind: "peer",
    commonName: `${headless}.${namespace}.svc`,
    dnsNames: [...ordinalNames(0, replicas + headroom), ...peerNames],
    ipAddresses: extra.ipAddresses,
    // Kept while it covers the running replicas: the headroom is what scaling up grows into.
    requiredSans: { dnsNames: [...ordinalNames(0, replicas), ...peerNames] },
    validityDays: options.validityDays,
  });
  const server = await pki.ensureCertificate({
    name: `${service}-server`,
    kind: "server",
    commonName: `${service}.${namespace}.svc`,
    // Each pod's stable name too, by wildcard (every ordinal, however far it scales): clients
    // reconnect to the brokers' client_advertise names, which they learn in INFO connect_urls.
    dnsNames: [
      service,
      `${service}.${namespace}`,
      ...qualified(service),
      ...qualified(`*.${headless}`),
      ...extra.dnsNames,
    ],
    ipAddresses: extra.ipAddresses,
    validityDays: options.validityDays,
  });
  return { peer, server };
}

/** A client certificate (clientAuth only) named `<name>`, for a program that talks to the broker. */
export function issueClientCertificate(
  pki: Pki,
  name: string,
  options: { commonName?: string; validityDays?: number } = {},
): Promise<EnsuredCertificate> {
  return pki.ensureCertificate({
    name,
    kind: "client",
    commonName: options.commonName ?? name,
    validityDays: options.validityDays,
  });
}
