/**
 * The names the plane's objects carry. The installer's PKI issues the broker's certificates for the
 * same names (installer/pki brokerCertificates), so they change together or not at all.
 */
export const NAMESPACE = "hubble-system";
/** The StatefulSet and its client Service: pods are `msgbroker-0`, `msgbroker-1`, … */
export const BROKER = "msgbroker";
/** The headless Service that gives each broker pod its stable DNS name. */
export const BROKER_HEADLESS = "msgbroker-headless";
export const BROKER_CONFIG = "msgbroker-config";
/** Route (peer) certificate, key and CA, as a kubernetes.io/tls Secret. */
export const BROKER_PEER_SECRET = "msgbroker-peer-tls";
/** Client-service certificate, key and CA, as a kubernetes.io/tls Secret. */
export const BROKER_SERVER_SECRET = "msgbroker-server-tls";
/** The broker image's repository in a bundle; its tag is the plane's version unless values name one. */
export const BROKER_REPOSITORY = "hubble/msgbroker";
/** The user and group the broker image runs as (scripts/msgbroker-image.mjs). */
export const BROKER_UID = 1000;
