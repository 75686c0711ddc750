/**
 * The management plane as code: values (zod, with defaults) → the Kubernetes objects of the
 * `hubble-system` namespace and the msgbroker's nats-server config. Pure data and functions, no
 * cluster I/O.
 */
export { render, RELEASE_LABEL, CONFIG_DIGEST_ANNOTATION } from "./render.js";
export type { BrokerCertificatePems, RenderInputs } from "./render.js";
export { valuesSchema, parseValues, DEFAULT_REGISTRY } from "./values.js";
export type { Values, ValuesInput } from "./values.js";
export {
  renderBrokerConfig,
  brokerEnvironment,
  brokerCertificateNames,
  POD_BROKER_PATHS,
  CLUSTER_ADVERTISE_ENV,
  POD_NAME_ENV,
} from "./broker-config.js";
export type { BrokerCertificateNames, BrokerEnvironment, BrokerPaths } from "./broker-config.js";
export { pinImage } from "./images.js";
export type { BundleImageEntry, ImageMap } from "./images.js";
export {
  NAMESPACE,
  BROKER,
  BROKER_HEADLESS,
  BROKER_CONFIG,
  BROKER_PEER_SECRET,
  BROKER_SERVER_SECRET,
  BROKER_REPOSITORY,
} from "./names.js";
export type * from "./kubernetes.js";
export { renderPack, readPack } from "./packs.js";
export type { Pack, PackRenderOptions, KubernetesObject } from "./packs.js";
