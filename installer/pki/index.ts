/**
 * The site PKI: a CA and the certificates Airlock's registry and the msgbroker present, under
 * `<dataDir>/pki/` (ECDSA P-256, SHA-256 signatures, keys 0600, written atomically).
 */
export {
  Pki,
  openPki,
  listCertificates,
  rotate,
  DEFAULT_RENEW_WITHIN_DAYS,
  DEFAULT_VALIDITY_DAYS,
} from "./pki.js";
export type {
  CertificateInfo,
  CertificateSpec,
  CertificateStatus,
  EnsuredCertificate,
  PkiLogger,
  PkiOptions,
  ReissueReason,
  RotateOptions,
  RotateResult,
} from "./pki.js";
export {
  registryServerCertificate,
  brokerCertificates,
  issueClientCertificate,
  REGISTRY_CERTIFICATE,
} from "./profiles.js";
export type { BrokerCertificateOptions, BrokerCertificates, RegistryCertificateOptions } from "./profiles.js";
export type { CertificateKind } from "./x509.js";
