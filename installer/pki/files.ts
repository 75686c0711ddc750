import { chmod, link, mkdir, open, readdir, readFile, rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import { AirlockError, errnoCode } from "../../registry/oci/index.js";

/**
 * The pki/ directory on disk: `<name>.crt` beside `<name>.key`, the directory 0700, keys 0600.
 * A pair is replaced as one: both files are staged as `.next`, then renamed key first, certificate
 * last; a crash in between is finished (or undone) by `recoverStaged` on the next locked operation,
 * so no run ever meets a certificate beside a key that is not its own.
 */

const CERT_SUFFIX = ".crt";
const KEY_SUFFIX = ".key";
const STAGED_SUFFIX = ".next";
const TEMP_SUFFIX = ".tmp";
const LOCK_FILE = ".lock";

export interface PairFiles {
  certFile: string;
  keyFile: string;
}

export function pairFiles(dir: string, name: string): PairFiles {
  return { certFile: join(dir, `${name}${CERT_SUFFIX}`), keyFile: join(dir, `${name}${KEY_SUFFIX}`) };
}

/** The file's text, or undefined when it does not exist. */
export async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    if (errnoCode(error) === "ENOENT") return undefined;
    throw new AirlockError("PKI_UNREADABLE", `cannot read ${path}: ${(error as Error).message}`, {
      where: path,
      hint: "run as the user that owns the data dir (root on a site host)",
      cause: error,
    });
  }
}

/** Names of the certificates in the directory, from their `.crt` files; none when it does not exist. */
export async function certificateNames(dir: string): Promise<string[]> {
  const entries = await readdir(dir).catch((error: unknown) => {
    if (errnoCode(error) === "ENOENT") return [] as string[];
    throw error;
  });
  return entries
    .filter((entry) => entry.endsWith(CERT_SUFFIX))
    .map((entry) => entry.slice(0, -CERT_SUFFIX.length))
    .sort();
}

export async function ensureDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 }).catch((error: unknown) => {
    throw writeFailed(dir, error);
  });
  // An existing directory keeps its mode through mkdir: tighten it.
  await chmod(dir, 0o700).catch((error: unknown) => {
    throw writeFailed(dir, error);
  });
}

async function writeDurable(path: string, data: string, mode: number): Promise<void> {
  const temp = `${path}.${process.pid}${TEMP_SUFFIX}`;
  const handle = await open(temp, "w", mode);
  try {
    await handle.writeFile(data);
    // The umask may have narrowed or the file pre-existed: set the mode the key needs.
    await handle.chmod(mode);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, path);
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Replaces `<name>.crt` and `<name>.key` as one: see the module comment. */
export async function commitPair(dir: string, name: string, certPem: string, keyPem: string): Promise<void> {
  const { certFile, keyFile } = pairFiles(dir, name);
  // PEM files end with a newline, so tools that concatenate them (CA bundles) get valid PEM.
  const line = (pem: string): string => (pem.endsWith("\n") ? pem : `${pem}\n`);
  try {
    await writeDurable(certFile + STAGED_SUFFIX, line(certPem), 0o644);
    await writeDurable(keyFile + STAGED_SUFFIX, line(keyPem), 0o600);
    await rename(keyFile + STAGED_SUFFIX, keyFile);
    await rename(certFile + STAGED_SUFFIX, certFile);
    await syncDir(dir);
  } catch (error) {
    throw writeFailed(certFile, error);
  }
}

/**
 * Finishes or undoes what a crash left staged. Both halves staged: commit them. Only the certificate
 * staged: either the crash came before its key was staged (the key on disk is the old one: drop the
 * certificate) or after the key was renamed into place (commit it); `certificateOwnsKey` tells which.
 */
export async function recoverStaged(
  dir: string,
  certificateOwnsKey: (certPem: string, keyPem: string) => Promise<boolean>,
): Promise<void> {
  try {
    const entries = await readdir(dir);
    // Only a pair's temp files: a lock's belongs to a process waiting for the lock.
    const pairTemps = entries.filter((e) => /\.(crt|key)\.next\.\d+\.tmp$/.test(e));
    for (const entry of pairTemps) await unlink(join(dir, entry));
    const stagedNames = new Set(
      entries
        .filter((e) => e.endsWith(STAGED_SUFFIX))
        .map((e) => e.slice(0, -STAGED_SUFFIX.length).replace(/\.(crt|key)$/, "")),
    );
    for (const name of stagedNames) {
      const { certFile, keyFile } = pairFiles(dir, name);
      const stagedCert = entries.includes(`${name}${CERT_SUFFIX}${STAGED_SUFFIX}`);
      const stagedKey = entries.includes(`${name}${KEY_SUFFIX}${STAGED_SUFFIX}`);
      if (stagedCert && stagedKey) {
        await rename(keyFile + STAGED_SUFFIX, keyFile);
        await rename(certFile + STAGED_SUFFIX, certFile);
      } else if (stagedKey) {
        await unlink(keyFile + STAGED_SUFFIX);
      } else {
        const certPem = await readFile(certFile + STAGED_SUFFIX, "utf8");
        const keyPem = await readOptional(keyFile);
        if (keyPem !== undefined && (await certificateOwnsKey(certPem, keyPem).catch(() => false)))
          await rename(certFile + STAGED_SUFFIX, certFile);
        else await unlink(certFile + STAGED_SUFFIX);
      }
    }
  } catch (error) {
    throw writeFailed(dir, error);
  }
}

function writeFailed(where: string, error: unknown): AirlockError {
  if (error instanceof AirlockError) return error;
  const code = errnoCode(error);
  return new AirlockError("PKI_WRITE_FAILED", `writing ${where} failed: ${(error as Error).message}`, {
    where,
    hint:
      code === "ENOSPC"
        ? "free space on the disk holding the data dir and run this again"
        : "run as the user that owns the data dir (root on a site host), then run this again",
    cause: error,
  });
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errnoCode(error) === "EPERM";
  }
}

function busy(lockFile: string, holder: string): AirlockError {
  return new AirlockError("PKI_LOCKED", `the PKI is busy: process ${holder.trim()}`, {
    where: lockFile,
    hint: "wait for it to finish and run this again",
  });
}

/**
 * Takes pki/.lock for one operation across processes. The lock file appears whole (a hard link to a
 * written temp file), so its pid is always there to read; a lock whose process died is taken over by
 * moving it aside and checking that what moved is the dead holder's. Callers serialise within this
 * process, so a lock naming this pid is a previous incarnation's.
 */
export async function acquireDirLock(dir: string, purpose: string): Promise<() => Promise<void>> {
  const lockFile = join(dir, LOCK_FILE);
  const mine = `${process.pid} ${purpose}\n`;
  const temp = `${lockFile}.${process.pid}${TEMP_SUFFIX}`;
  try {
    await writeDurable(temp, mine, 0o600);
  } catch (error) {
    throw writeFailed(lockFile, error);
  }
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await link(temp, lockFile);
        return () => unlink(lockFile).catch(() => undefined);
      } catch (error) {
        if (errnoCode(error) !== "EEXIST") throw writeFailed(lockFile, error);
      }
      const holder = await readOptional(lockFile);
      if (holder === undefined) continue;
      const pid = Number(holder.split(" ")[0]);
      if (pid !== process.pid && processAlive(pid)) throw busy(lockFile, holder);
      const aside = `${lockFile}.${process.pid}.stale`;
      try {
        await rename(lockFile, aside);
      } catch (error) {
        if (errnoCode(error) === "ENOENT") continue;
        throw writeFailed(lockFile, error);
      }
      const moved = await readFile(aside, "utf8");
      if (moved !== holder) {
        // Another process took the dead lock over first: give it back its lock.
        await rename(aside, lockFile);
        throw busy(lockFile, moved);
      }
      await unlink(aside);
    }
    throw busy(lockFile, "unknown (the lock kept changing hands)");
  } finally {
    await unlink(temp).catch(() => undefined);
  }
}
