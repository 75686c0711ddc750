/**
 * The Kubernetes API objects the plane renders, typed to the fields it sets (a subset of the
 * API's own types; the tests check every object against the real schemas).
 */

export type Labels = Record<string, string>;

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels: Labels;
  annotations?: Record<string, string>;
}

export interface LabelSelector {
  matchLabels: Labels;
}

export interface Namespace {
  apiVersion: "v1";
  kind: "Namespace";
  metadata: ObjectMeta;
}

export interface Secret {
  apiVersion: "v1";
  kind: "Secret";
  metadata: ObjectMeta;
  type: "kubernetes.io/tls";
  /** Base64 of each file. */
  data: Record<string, string>;
}

export interface ConfigMap {
  apiVersion: "v1";
  kind: "ConfigMap";
  metadata: ObjectMeta;
  data: Record<string, string>;
}

export interface ServicePort {
  name: string;
  port: number;
  targetPort: string;
  protocol: "TCP";
}

export interface Service {
  apiVersion: "v1";
  kind: "Service";
  metadata: ObjectMeta;
  spec: {
    type: "ClusterIP";
    clusterIP?: "None";
    publishNotReadyAddresses?: boolean;
    selector: Labels;
    ports: ServicePort[];
  };
}

export interface Toleration {
  key?: string;
  operator?: "Exists" | "Equal";
  value?: string;
  effect?: "NoSchedule" | "PreferNoSchedule" | "NoExecute";
  tolerationSeconds?: number;
}

// A type, not an interface: the API's resource lists are string-keyed maps, which only a type fits.
export type ResourceAmounts = {
  cpu: string;
  memory: string;
};

export interface HttpProbe {
  httpGet: { path: string; port: string };
  initialDelaySeconds?: number;
  periodSeconds: number;
  timeoutSeconds: number;
  failureThreshold: number;
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef: { fieldPath: string } };
}

export interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
}

export interface Container {
  name: string;
  image: string;
  imagePullPolicy: "IfNotPresent";
  args: string[];
  env: EnvVar[];
  ports: Array<{ name: string; containerPort: number; protocol: "TCP" }>;
  resources: { requests: ResourceAmounts; limits: ResourceAmounts };
  securityContext: {
    runAsNonRoot: true;
    runAsUser: number;
    runAsGroup: number;
    readOnlyRootFilesystem: true;
    allowPrivilegeEscalation: false;
    capabilities: { drop: ["ALL"] };
  };
  startupProbe: HttpProbe;
  readinessProbe: HttpProbe;
  livenessProbe: HttpProbe;
  lifecycle: { preStop: { exec: { command: string[] } } };
  volumeMounts: VolumeMount[];
}

export interface KeyToPath {
  key: string;
  path: string;
}

export type Volume =
  | { name: string; configMap: { name: string; defaultMode: number } }
  | {
      name: string;
      projected: {
        defaultMode: number;
        sources: Array<{ secret: { name: string; items: KeyToPath[] } }>;
      };
    }
  | { name: string; emptyDir: Record<string, never> };

export interface PodSpec {
  automountServiceAccountToken: false;
  enableServiceLinks: false;
  terminationGracePeriodSeconds: number;
  securityContext: {
    runAsNonRoot: true;
    runAsUser: number;
    runAsGroup: number;
    fsGroup: number;
    seccompProfile: { type: "RuntimeDefault" };
  };
  affinity: {
    podAntiAffinity: {
      preferredDuringSchedulingIgnoredDuringExecution: Array<{
        weight: number;
        podAffinityTerm: { labelSelector: LabelSelector; topologyKey: string };
      }>;
    };
  };
  topologySpreadConstraints: Array<{
    maxSkew: number;
    topologyKey: string;
    whenUnsatisfiable: "ScheduleAnyway" | "DoNotSchedule";
    labelSelector: LabelSelector;
  }>;
  nodeSelector?: Labels;
  tolerations?: Toleration[];
  containers: Container[];
  volumes: Volume[];
}

export interface PersistentVolumeClaimTemplate {
  metadata: { name: string; labels: Labels };
  spec: {
    accessModes: ["ReadWriteOnce"];
    storageClassName?: string;
    resources: { requests: { storage: string } };
  };
}

export interface StatefulSet {
  apiVersion: "apps/v1";
  kind: "StatefulSet";
  metadata: ObjectMeta;
  spec: {
    replicas: number;
    serviceName: string;
    podManagementPolicy: "Parallel";
    updateStrategy: { type: "RollingUpdate"; rollingUpdate: { partition: number } };
    selector: LabelSelector;
    template: { metadata: { labels: Labels; annotations: Record<string, string> }; spec: PodSpec };
    volumeClaimTemplates?: PersistentVolumeClaimTemplate[];
  };
}

export interface PodDisruptionBudget {
  apiVersion: "policy/v1";
  kind: "PodDisruptionBudget";
  metadata: ObjectMeta;
  spec: { maxUnavailable: number; selector: LabelSelector };
}

export interface NetworkPolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
}

export interface NetworkPolicy {
  apiVersion: "networking.k8s.io/v1";
  kind: "NetworkPolicy";
  metadata: ObjectMeta;
  spec: {
    podSelector: LabelSelector;
    policyTypes: ["Ingress"];
    ingress: Array<{ from?: NetworkPolicyPeer[]; ports: Array<{ protocol: "TCP"; port: string }> }>;
  };
}

/** Every object the plane renders. */
export type PlaneObject =
  Namespace | Secret | ConfigMap | Service | StatefulSet | PodDisruptionBudget | NetworkPolicy;
