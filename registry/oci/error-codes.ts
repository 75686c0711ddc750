/**
 * Every code Airlock reports, in one table: each AirlockError's, and the codes the registry and the
 * console write in their error bodies. Scripts and operators match on the code, so a code, once
 * shipped, keeps its meaning. docs/errors.md is generated from this table
 * (`npm run build && node scripts/write-error-codes.mjs`); a new code goes here, in order.
 */
export interface ErrorCodeInfo {
  /** What the code means to an operator, in one line. */
  readonly summary: string;
  /** The CLI's exit status: 2 for usage errors (a flag, or an input the operator wrote), 1 otherwise. */
  readonly exitCode: 1 | 2;
  /** Whether the same command or request may succeed run again unchanged (a busy lock, the network). */
  readonly retryable: boolean;
  /** The HTTP status Airlock answers the code with, where it answers it over HTTP. */
  readonly http?: number;
  /**
   * One of the OCI distribution spec's codes, answered with the status distribution (the reference
   * implementation) gives it; PAGINATION_NUMBER_INVALID is distribution's own.
   */
  readonly oci?: true;
}

/** A usage error: the command line, or an input the operator wrote, is wrong (exit 2). */
function usage(summary: string, http?: number): ErrorCodeInfo {
  return { summary, exitCode: 2, retryable: false, ...(http === undefined ? {} : { http }) };
}

/** A failure that needs something changed before the same command can succeed (exit 1). */
function failure(summary: string, http?: number): ErrorCodeInfo {
  return { summary, exitCode: 1, retryable: false, ...(http === undefined ? {} : { http }) };
}

/** A failure the same command may get past run again unchanged: a busy lock, the network (exit 1). */
function transient(summary: string, http?: number): ErrorCodeInfo {
  return { summary, exitCode: 1, retryable: true, ...(http === undefined ? {} : { http }) };
}

function oci(http: number, summary: string, retryable = false): ErrorCodeInfo & { readonly oci: true } {
  return { summary, exitCode: 1, retryable, http, oci: true };
}

export const ERROR_CODES = {
  AT_INVALID: usage("--at is not a date-time (with an optional zone) Airlock reads"),
  AT_IN_PAST: usage("--at names a time that has already passed"),
  AUTH_FILE_INVALID: usage(
    "the registry auth file (--authfile) is not JSON, or an entry has no user:password",
  ),
  AUTH_FILE_UNREADABLE: usage("the registry auth file (--authfile) cannot be read"),
  BLOB_IN_USE: failure("a blob cannot be deleted: manifests in the store still use it"),
  BLOB_TOO_LARGE: failure("a blob is larger than the reader accepts for it (metadata read whole)"),
  BLOB_UNKNOWN: oci(404, "the blob is not in the store"),
  BLOB_UPLOAD_INVALID: oci(
    400,
    "the upload request is malformed (a chunk out of order, a bad Content-Range)",
  ),
  BLOB_UPLOAD_UNKNOWN: oci(404, "the upload session is unknown or has ended"),
  BUNDLE_BASE_MISSING: failure(
    "a delta bundle needs blobs of its base bundle that the store lacks: import the base first",
  ),
  BUNDLE_BLOB_MISSING: failure("the bundle does not carry a blob the mirrored images need"),
  BUNDLE_CORRUPT: failure("the bundle's tar structure is damaged, or the file is not an Airlock bundle"),
  BUNDLE_ENTRY_CORRUPT: failure("an entry of the bundle does not match its digest or size"),
  BUNDLE_ENTRY_DUPLICATE: failure("an entry appears twice in the bundle: it was altered"),
  BUNDLE_ENTRY_HEADER_MISMATCH: failure(
    "an entry's tar header differs from what airlock.json records: the bundle was altered",
  ),
  BUNDLE_ENTRY_MISSING: failure("an entry airlock.json lists is not in the bundle: it is incomplete"),
  BUNDLE_ENTRY_UNKNOWN: failure("the bundle holds an entry airlock.json does not list: it was altered"),
  BUNDLE_ENTRY_UNSAFE: failure(
    "an entry's name or type is unsafe (a path escape, a link, a device): do not use the bundle",
  ),
  BUNDLE_K3S_MISSING: failure("the bundle carries no k3s binary, so it cannot install k3s"),
  BUNDLE_KEY_MISMATCH: failure("--key is not the vendor key this site was installed with"),
  BUNDLE_METADATA_INVALID: failure("the bundle's airlock.json is not valid"),
  BUNDLE_METADATA_MISSING: failure(
    "the bundle does not start with airlock.json: not an Airlock bundle, or not its first part",
  ),
  BUNDLE_NOT_FOUND: usage("the bundle file given does not exist", 404),
  BUNDLE_NOT_IMPORTED: failure("the bundle an upgrade names is not in the store: import it first"),
  BUNDLE_PARTS_MANIFEST_INVALID: failure("the bundle's .parts.json is not a valid list of parts"),
  BUNDLE_PARTS_MANIFEST_MISSING: failure(
    "parts of a bundle were given without the .parts.json that lists them",
  ),
  BUNDLE_PARTS_ORDER: usage("the parts were named out of the order .parts.json lists"),
  BUNDLE_PART_MISSING: failure("a part .parts.json lists is not beside the first part"),
  BUNDLE_PART_SIZE: failure(
    "a part's size differs from the one .parts.json records: it was cut short or is from another build",
  ),
  BUNDLE_PLANE_MISSING: failure(
    "the bundle carries no management-plane (msgbroker) image: there is no plane in it to install",
  ),
  BUNDLE_SIGNATURE_INVALID: failure("the bundle's signature does not verify with the key given"),
  BUNDLE_TRAILING_DATA: failure("bytes follow the bundle's end-of-archive marker: it was altered"),
  BUNDLE_TRUNCATED: failure("the bundle ends early: an interrupted copy or a missing part"),
  BUNDLE_UNSIGNED: failure("a key was given but the bundle is not signed"),
  BUNDLE_VALUES_INVALID: failure(
    "the bundle's manifests/values.yaml is not a YAML map: the vendor's bundle is malformed",
  ),
  CERTIFICATES_INVALID: failure("a certificate given to render the plane is not PEM"),
  CLUSTER_API_FAILED: transient(
    "the Kubernetes API server failed the request (a 5xx or other unexpected status)",
    500,
  ),
  CLUSTER_BAD_REQUEST: failure("the Kubernetes API server refused a malformed object or request (400)", 400),
  CLUSTER_CONFLICT: failure("another field manager owns the fields being applied (409)", 409),
  CLUSTER_FIELD_IMMUTABLE: failure(
    "a field the API server does not change in place differs: the object is recreated",
    422,
  ),
  CLUSTER_FORBIDDEN: failure("the kubeconfig's user lacks the RBAC rights for the request (403)", 403),
  CLUSTER_INVALID: failure("the Kubernetes API server's validation refused the object (422)", 422),
  CLUSTER_NOT_FOUND: failure("the Kubernetes object (or its namespace) does not exist (404)", 404),
  CLUSTER_TIMEOUT: transient("the Kubernetes API server did not answer in time"),
  CLUSTER_UNAUTHORIZED: failure("the Kubernetes API server refused the kubeconfig's credentials (401)", 401),
  CLUSTER_UNREACHABLE: transient("the Kubernetes API server cannot be reached"),
  DAEMON_RUNNING: failure(
    "airlock serve already runs on this data dir: stop it, or serve another --data-dir",
  ),
  DENIED: oci(403, "the registry's user may not do this (read-only registry, or no push right)"),
  DIGEST_INVALID: oci(
    400,
    "a digest is malformed, or uploaded content does not match the digest it was sent with",
  ),
  DIGEST_MISMATCH: failure(
    "content does not hash to the digest it should have: the source is corrupt or changed",
  ),
  DIGEST_PIN_MISMATCH: failure("an image's digest at the source differs from the digest: pin in bundle.yaml"),
  DIGEST_UNSUPPORTED: failure("a digest uses an algorithm other than sha256"),
  FILE_PIN_MISMATCH: failure("a file's sha256 differs from the sha256: pin in bundle.yaml"),
  FREEZE_INVALID: usage("--freeze is not a freeze period Airlock reads"),
  HOST_FILE_FAILED: failure("a file on the host cannot be read or written (permissions, a full disk)"),
  HOST_PATH_INVALID: failure("a host path is not absolute"),
  HTPASSWD_INVALID: usage("a line of the htpasswd file is not user:bcrypt-hash"),
  HTPASSWD_UNREADABLE: usage("the htpasswd file cannot be read"),
  IMAGE_NOT_FOUND: failure("the image source holds no image of that name", 404),
  IMAGE_NOT_IN_BUNDLE: failure("the plane needs an image the bundle does not carry"),
  INSTALL_ALREADY_INSTALLED: failure(
    "a site is installed already: move to a new bundle with airlock upgrade",
  ),
  INTERNAL: failure("a failure Airlock has no code for (a bug): --debug shows its stack"),
  INTERRUPTED: transient(
    "the command was interrupted (SIGINT, SIGTERM; the CLI exits 130): run it again to go on",
  ),
  INVENTORY_INVALID: usage(
    "the inventory given to build a delta cannot be read or is not an Airlock inventory",
  ),
  IN_USE_BY_BUNDLE: failure(
    "an image belongs to an imported bundle: it is removed with the bundle, not alone",
  ),
  JOIN_CA_MISMATCH: failure("the server a node joins presents a CA the join token does not pin"),
  JOIN_SERVER_UNKNOWN: usage("this host has no address other nodes could reach: give --server"),
  JOIN_SERVER_UNREACHABLE: transient("the server a node joins cannot be reached for its CA"),
  JOIN_TOKEN_INVALID: usage("the join token is malformed"),
  K3S_NOT_INSTALLED: failure("this host runs no k3s server Airlock installed"),
  K3S_NOT_READY: failure("k3s did not become ready in time: its log says why"),
  K3S_REGISTRIES_UNKNOWN: failure("k3s's registries.yaml is not the one Airlock writes"),
  K3S_SKEW_REFUSED: failure(
    "the bundle's k3s would be older than the running one or skip a minor version: k3s goes one minor at a time",
    409,
  ),
  K3S_VERSION_UNKNOWN: failure("a k3s binary's --version printed no k3s version"),
  KEY_EXISTS: usage("a key file exists already and --force was not given"),
  KEY_INVALID: usage("a key is not a PEM ECDSA P-256 key"),
  KEY_UNREADABLE: usage("a key file cannot be read"),
  KUBECONFIG_INVALID: usage("the kubeconfig cannot be read or names no current cluster"),
  LISTEN_FAILED: failure("the registry cannot listen on the address (in use, or not permitted)"),
  LOCK_HELD: transient("another airlock process is changing this site: wait for it", 409),
  MANIFEST_BLOB_UNKNOWN: oci(404, "a manifest pushed refers to a blob the registry does not have"),
  MANIFEST_INVALID: oci(400, "a manifest or index is malformed"),
  MANIFEST_UNKNOWN: oci(404, "the manifest is not in the repository"),
  MIRROR_BLOB_MISSING: failure(
    "a blob is neither in the mirrored source nor at the target: mirror the base bundle first",
  ),
  MIRROR_FAILED: failure(
    "an image failed to mirror for a reason Airlock has no code for (in mirror's --json result)",
  ),
  MIRROR_INCOMPLETE: failure("some images failed to mirror; those that arrived are kept"),
  MIRROR_STATE_WRITE_FAILED: failure("mirror cannot write its resume journal in --output-dir"),
  NAME_INVALID: oci(400, "the repository name is malformed"),
  NAME_UNKNOWN: oci(404, "the repository is not known to the registry"),
  NODE_COMMAND_FAILED: failure(
    "a host tool the node runs (ip, ctr, …) exited non-zero or could not be started",
  ),
  NODE_COMMAND_TIMEOUT: transient("a host tool the node runs did not finish in time"),
  NODE_CONTAINER_REMOVE_FAILED: failure("containerd refused to remove a container"),
  NODE_HOSTS_INVALID: failure("a name or address for a pod's /etc/hosts is malformed"),
  NODE_HOSTS_WRITE_FAILED: failure("a pod's hosts file cannot be written or removed"),
  NODE_IMAGE_PULL_FAILED: failure("containerd could not pull an image through the site registry"),
  NODE_NETWORK_CLEANUP_FAILED: failure("removing a pod network left interfaces or routes behind"),
  NODE_NETWORK_CLOSED: failure("the pod network is closed"),
  NODE_NETWORK_FAILED: failure("setting up the pod network failed (it needs root and iproute2)"),
  NODE_NETWORK_FULL: failure("the pod network has no address left"),
  NODE_NETWORK_IN_USE: failure("the pod network's prefix names interfaces already on the host"),
  NODE_POD_ATTACHED: failure("the pod already has an address on the pod network"),
  NODE_PREFIX_INVALID: failure("a pod network's run prefix is not 1–6 lowercase letters and digits"),
  NODE_REGISTRIES_INVALID: failure("registries.yaml is not valid as k3s documents it"),
  NODE_REWRITE_UNSUPPORTED: failure(
    "a registries.yaml rewrite is not a repository prefix, the only kind containerd 1.6 follows",
  ),
  NODE_SUBNET_INVALID: failure("a pod network's subnet is not a network address with a prefix up to /30"),
  NODE_SUBNET_IN_USE: failure("a pod network's subnet overlaps one already on the host"),
  NODE_SUBNET_OUTSIDE_RANGE: failure("a pod network's subnet is outside 198.18.0.0/15"),
  NODE_TOOL_MISSING: failure("a host tool the node needs (containerd, runc, ctr, ip) is not installed"),
  NOTHING_TO_ROLL_BACK: failure(
    "the current release replaced no earlier release: there is none to roll back to",
    409,
  ),
  NOT_INSTALLED: failure("nothing is installed in the data dir", 409),
  OUTPUT_DISK_FULL: failure("the disk the bundle is written to is full"),
  OUTPUT_NOT_WRITABLE: usage("the output directory does not exist or is not writable"),
  OUTPUT_WRITE_FAILED: failure("writing the bundle failed"),
  PACK_INVALID: failure("a pack's pack.yaml is not valid (YAML, name, version)"),
  PACK_TEMPLATE_INVALID: usage(
    "a pack template is not valid: a bad variable, or not YAML of Kubernetes objects",
  ),
  PACK_TEMPLATE_VARIABLE_INVALID: usage("a template variable names a list or map, not a single value"),
  PACK_TEMPLATE_VARIABLE_UNKNOWN: usage("a template variable is not defined"),
  PAGINATION_NUMBER_INVALID: oci(400, "(distribution's own code) the page size n is not a valid number"),
  PATH_NOT_FOUND: failure("a file or directory bundle.yaml names cannot be read", 404),
  PATH_UNSUPPORTED: failure(
    "a file bundle.yaml names cannot be a bundle entry (its name, or not a regular file)",
  ),
  PKI_CA_EXPIRED: failure("the site CA has expired"),
  PKI_CA_INVALID: failure("the site CA's certificate is not a CA certificate"),
  PKI_CA_MISSING: failure("the site CA is gone but certificates it signed remain: restore it from a backup"),
  PKI_CA_NOT_YET_VALID: failure("the site CA is not valid yet: check this host's clock"),
  PKI_CERT_INVALID: failure("a certificate in pki/ is not one Airlock issues"),
  PKI_KEY_INVALID: failure("a key in pki/ is not an ECDSA P-256 key"),
  PKI_KEY_MISMATCH: failure("a key in pki/ is not the key of its certificate"),
  PKI_LOCKED: transient("another process is changing the PKI: wait for it"),
  PKI_NO_CA: failure("there is no site CA to rotate certificates under"),
  PKI_SPEC_INVALID: usage("a PKI option (validity, names) is not valid"),
  PKI_UNKNOWN_CERTIFICATE: usage("no certificate has the name given"),
  PKI_UNREADABLE: failure("a file of the PKI cannot be read, or half of a pair is missing"),
  PKI_WRITE_FAILED: failure("writing a file of the PKI failed"),
  PLAN_INPUT_INVALID: failure("an upgrade plan's input is not JSON data (a bug in the caller)"),
  PLAN_NOT_FOUND: failure("there is no upgrade plan with that id", 404),
  PLAN_NOT_RUNNABLE: failure("the upgrade plan has run, failed or been cancelled: make a new plan", 409),
  PLAN_OBJECT_INVALID: failure("a recorded release holds something that is not a Kubernetes object"),
  PLAN_STALE: failure("the installed release changed since the plan was made: plan again", 409),
  PLATFORM_INVALID: failure("a platform is not os/architecture[/variant]"),
  PLATFORM_NOT_FOUND: failure("an image has none of the platforms bundle.yaml asks for", 404),
  PREFLIGHT_FAILED: failure("the host failed preflight checks"),
  REFERENCE_INVALID: failure("an image reference is malformed"),
  REGISTRY_AUTH_FAILED: failure("a registry (or its token service) refused the credentials (401)"),
  REGISTRY_CA_UNREADABLE: usage("the CA file bundle.yaml gives for a registry cannot be read"),
  REGISTRY_DENIED: failure("a registry refused the request for these credentials (403)"),
  REGISTRY_DIGEST_MISMATCH: failure("a registry served content that does not match its digest"),
  REGISTRY_NOT_ANSWERING: transient(
    "Airlock's registry service did not answer /v2/ in time after it started",
  ),
  REGISTRY_PROTOCOL: failure(
    "a registry answered outside the distribution protocol (no realm, no token, no Location)",
  ),
  REGISTRY_REFUSED: failure("a registry refused the request (a 4xx other than 401 and 403)"),
  REGISTRY_TLS_FAILED: failure("TLS with a registry failed: an untrusted or misnamed certificate"),
  REGISTRY_UNAVAILABLE: transient("a registry answered a retryable status (429, 5xx) until retries ran out"),
  REGISTRY_UNREACHABLE: transient("a registry cannot be resolved or reached"),
  REGISTRY_UPLOAD_LOST: transient(
    "a registry refused to resume an upload it had started (its session is gone)",
  ),
  RELEASE_INVALID: usage("a release name or plane version is not a valid Kubernetes label value"),
  ROLLBACK_FAILED: failure("a rollback to the previous release did not finish: the plane is left as it is"),
  ROLLOUT_OBJECT_GONE: failure("an object was deleted while its rollout was awaited"),
  ROLLOUT_TIMEOUT: failure(
    "an object did not roll out in time (an image the registry lacks, a crash at start)",
  ),
  SCHEDULE_OVERLAP: failure("the upgrade plan is already scheduled", 409),
  SITE_UNHEALTHY: failure("airlock status found the site unhealthy"),
  SIZE_INVALID: oci(400, "content is not the size it was declared to be"),
  SOURCE_BLOB_MISSING: failure("an image source (layout, archive) lacks a blob its manifests name"),
  SOURCE_CHANGED: transient("a source file or image changed while the bundle was written: build again"),
  SOURCE_CORRUPT: failure("an image source holds content that does not match its digest or size"),
  SOURCE_NOT_FOUND: failure("an image source cannot be read", 404),
  SOURCE_UNSUPPORTED: failure("the image source cannot do what bundle.yaml asks (such as list referrers)"),
  SPEC_INVALID: usage("bundle.yaml is not valid (YAML syntax, or a field)"),
  SPEC_NOT_FOUND: usage("there is no bundle.yaml at the path given", 404),
  STATE_CONFLICT: failure(
    "the change conflicts with the site's recorded state (the current release, a finished run)",
    409,
  ),
  STATE_NOT_FOUND: failure("the release, run or install step named is not in the state database", 404),
  STATE_OPEN_FAILED: failure("the state database or data dir cannot be opened or created"),
  STATE_TOO_NEW: failure("the data dir was written by a newer airlock"),
  STORE_DISK_FULL: transient(
    "the disk holding the store is full (the registry answers 503 with Retry-After)",
    503,
  ),
  STORE_EMPTY: failure("the store holds no bundle yet"),
  STORE_INCONSISTENT: failure("store fsck found corrupt or missing blobs"),
  STORE_LOCKED: transient("another process is using the store: wait for it"),
  STORE_OPEN_FAILED: failure("the store cannot be opened"),
  STORE_WRITE_FAILED: transient(
    "writing to the store failed (the registry answers 503 with Retry-After)",
    503,
  ),
  TLS_FILE_UNREADABLE: usage("the registry's TLS certificate or key file cannot be read"),
  TLS_INVALID: usage("the registry's TLS certificate or key is not usable"),
  TLS_NOT_SERVED: failure("the registry serves plain HTTP, so there is no certificate to reload"),
  TOOMANYREQUESTS: oci(429, "too many requests (too many failed logins)", true),
  UI_BAD_PARAMETER: usage("a console request's parameter is missing or malformed", 400),
  UI_DAEMON_REQUIRED: failure(
    "the console runs without the site daemon (airlock serve), which runs upgrades and rollbacks",
    409,
  ),
  UI_IMPORT_FAILED: failure(
    "a console upload's import failed for a reason Airlock has no code for: the log has it",
  ),
  UI_LAST_ADMIN: failure("the console's only admin cannot be removed: add another admin first"),
  UI_LISTEN_FAILED: failure("the console cannot listen on the address (in use, or not permitted)"),
  UI_NOT_FOUND: failure("the console has no such page, certificate or upload", 404),
  UI_PASSWORD_WEAK: usage("a new console password is too short, or is the current one", 400),
  UI_PASSWORD_WRONG: failure("the current console password given is wrong", 400),
  UI_UPLOAD_BUSY: transient("the console upload is receiving another chunk", 409),
  UI_UPLOAD_DISK_FULL: failure("the disk holding the console's data dir is full", 507),
  UI_UPLOAD_FINISHED: failure("the console upload has all its bytes already", 409),
  UI_UPLOAD_OFFSET: transient(
    "a chunk does not start where the console upload is: resume from Upload-Offset",
    416,
  ),
  UI_UPLOAD_STALLED: transient(
    "no byte of a console upload arrived for a while: its import waits for the upload to resume",
  ),
  UI_UPLOAD_WRITE_FAILED: failure("writing a console upload to disk failed", 500),
  UI_USER_EXISTS: failure("the console user exists already"),
  UI_USER_NOT_FOUND: failure("there is no console user of that name", 404),
  UNAUTHORIZED: oci(401, "the request needs credentials the registry accepts"),
  UNKNOWN: oci(500, "the registry failed internally; its log has the cause"),
  UNSUPPORTED: oci(405, "the registry does not support the operation"),
  UPGRADE_DOWNGRADE: failure(
    "the bundle is older than the installed version (--allow-downgrade if intended)",
    409,
  ),
  UPGRADE_IMAGE_MISSING: failure("the store lacks images of the bundle to upgrade to"),
  UPGRADE_INTERRUPTED: failure(
    "an earlier upgrade run did not finish: finish or undo it first (airlock upgrade run --resume)",
    409,
  ),
  UPGRADE_NO_PKI: failure("no install recorded the site's PKI: finish the install first"),
  UPGRADE_NO_WINDOW_FITS: usage("no maintenance window in the horizon fits the upgrade run"),
  UPGRADE_PATH_SKIPPED: failure(
    "the bundle does not upgrade from the installed version: upgrade through one between",
    409,
  ),
  UPGRADE_RECREATE_STUCK: failure(
    "an object deleted to be created again is still there: a finalizer holds it",
  ),
  UPGRADE_REFUSED: failure("the upgrade run's pre-gate refused it: nothing was changed"),
  UPGRADE_RELEASE_INVALID: failure("a release has not exactly one labelled StatefulSet for a run to roll"),
  UPGRADE_ROLLED_BACK: failure(
    "a gate failed during the upgrade run, and the plane was rolled back to the previous release",
  ),
  UPGRADE_RUNNING: failure("the upgrade plan is running and cannot be cancelled half-way", 409),
  UPGRADE_RUN_INTERRUPTED: failure(
    "an upgrade run stopped part-way: airlock upgrade run --resume finishes it or rolls it back",
  ),
  USAGE: usage("the command line is wrong (a flag, an argument, a combination)"),
  VALUES_INVALID: usage("the plane's values are not valid (YAML, or a field)"),
  VALUES_UNREADABLE: usage("the values file (--values) cannot be read"),
  VERSION_INVALID: failure("a version is not semver, or a bundle's upgradeFrom is not a semver range"),
  WINDOW_INVALID: usage("--window is not a maintenance window Airlock reads"),
} as const satisfies Record<string, ErrorCodeInfo>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** The codes the registry writes in the OCI error bodies it answers. */
export type OciErrorCode = {
  [K in ErrorCode]: (typeof ERROR_CODES)[K] extends { readonly oci: true } ? K : never;
}[ErrorCode];

export function errorCodeInfo(code: ErrorCode): ErrorCodeInfo {
  return ERROR_CODES[code];
}

/** The OCI codes with the HTTP status each is answered with. */
export const OCI_ERROR_CODES = Object.fromEntries(
  Object.entries(ERROR_CODES as Record<ErrorCode, ErrorCodeInfo>).flatMap(([code, info]) =>
    info.oci === true && info.http !== undefined ? [[code, info.http]] : [],
  ),
) as Readonly<Record<OciErrorCode, number>>;
