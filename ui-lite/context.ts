import type { Pki } from "../installer/pki/index.js";
import type { State } from "../installer/state/index.js";
import type { Store } from "../registry/store/index.js";
import type { CertificateList } from "./certificate-list.js";
import type { ConsoleUpgradeHooks } from "./upgrade-hooks.js";

/** What every page reads: the same library objects the CLI opens. */
export interface ConsoleContext {
  dataDir: string;
  store: Store;
  state: State;
  pki: Pki;
  /** The PKI's certificates, reused while their files are unchanged (see CertificateList). */
  certificates: CertificateList;
  clock: () => Date;
  /** The site's zone, shown beside UTC. */
  timeZone: string;
  /** Supplied by `airlock serve`; absent when the console runs without the site daemon. */
  upgrades: ConsoleUpgradeHooks | undefined;
}
