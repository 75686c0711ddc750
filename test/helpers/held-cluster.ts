/**
 * A ClusterClient in front of another (a MemoryCluster) that can hold one request for good: the
 * next apply matching a test's condition is done and its answer never sent, the next get or list
 * (its ref's name empty) matching it never answers, or the next watch matching it never reports — so a process driving the cluster through the API server facade is
 * stopped at a point the test chose, whatever the machine's speed, and can be killed there.
 */
import type {
  ApplyOptions,
  ClusterClient,
  ClusterObject,
  ListOptions,
  ObjectRef,
} from "../../installer/cluster/index.js";

type Verb = "apply" | "get" | "list" | "watch";

interface HoldRule {
  verb: Verb;
  matches: (ref: ObjectRef) => boolean;
  held: () => void;
}

const refOf = (object: ClusterObject): ObjectRef => ({
  apiVersion: object.apiVersion,
  kind: object.kind,
  name: object.metadata.name,
  namespace: object.metadata.namespace,
});

export class HoldingCluster implements ClusterClient {
  private rule: HoldRule | undefined;

  constructor(private readonly inner: ClusterClient) {}

  /** Holds the next `verb` whose object `matches`; resolves once it is held. One rule at a time. */
  holdNext(verb: Verb, matches: (ref: ObjectRef) => boolean): Promise<void> {
    return new Promise((resolve) => (this.rule = { verb, matches, held: resolve }));
  }

  private take(verb: Verb, ref: ObjectRef): boolean {
    const rule = this.rule;
    if (rule === undefined || rule.verb !== verb || !rule.matches(ref)) return false;
    this.rule = undefined;
    rule.held();
    return true;
  }

  async apply(object: ClusterObject, options: ApplyOptions): Promise<ClusterObject> {
    const stored = await this.inner.apply(object, options);
    // Done in the cluster; the client never learns it.
    if (this.take("apply", refOf(object))) return new Promise<never>(() => undefined);
    return stored;
  }

  get(ref: ObjectRef): Promise<ClusterObject | undefined> {
    if (this.take("get", ref)) return new Promise<never>(() => undefined);
    return this.inner.get(ref);
  }

  list(apiVersion: string, kind: string, options?: ListOptions): Promise<ClusterObject[]> {
    if (this.take("list", { apiVersion, kind, name: "", namespace: options?.namespace }))
      return new Promise<never>(() => undefined);
    return this.inner.list(apiVersion, kind, options);
  }

  delete(ref: ObjectRef): Promise<boolean> {
    return this.inner.delete(ref);
  }

  watch(
    ref: ObjectRef,
    onChange: (object: ClusterObject | undefined) => void,
    signal: AbortSignal,
  ): Promise<void> {
    if (this.take("watch", ref)) {
      // Nothing is ever reported; the watch ends only when its client goes.
      return new Promise((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
    }
    return this.inner.watch(ref, onChange, signal);
  }
}
