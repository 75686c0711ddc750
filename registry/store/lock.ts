import { open, readFile, rm } from "node:fs/promises";
import { resolve } from "node:path";
import { AirlockError, errnoCode } from "../oci/index.js";

export function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errnoCode(error) === "EPERM";
  }
}

/**
 * An exclusive lock file holding the owner's pid. A lock whose owner died (SIGKILL, power loss) is
 * taken over, so a crash never wedges the store; a live owner makes the caller fail fast.
 * A lock file naming this process is a live owner only if this process took it (`held`); otherwise
 * it is a previous incarnation's whose pid was reused (a container restart), and is taken over.
 */
const held = new Set<string>();

export async function acquireLock(path: string, purpose: string): Promise<() => Promise<void>> {
  const key = resolve(path);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const handle = await open(path, "wx", 0o600);
      held.add(key);
      await handle.writeFile(`${process.pid}\n${purpose}\n`);
      await handle.close();
      return async () => {
        held.delete(key);
        await rm(path, { force: true });
      };
    } catch (error) {
      if (errnoCode(error) !== "EEXIST") throw error;
      const [pidLine, holder] = (await readFile(path, "utf8").catch(() => "")).split("\n");
      const pid = Number(pidLine);
      if (Number.isInteger(pid) && pid > 0 && (pid === process.pid ? held.has(key) : processAlive(pid))) {
        throw new AirlockError(
          "STORE_LOCKED",
          `the store is busy: process ${pid} is running ${holder || "a write"}`,
          {
            where: path,
            hint: "wait for it to finish; if no airlock process is running, remove the lock file",
          },
        );
      }
      await rm(path, { force: true });
    }
  }
  throw new AirlockError("STORE_LOCKED", "could not take the store lock", { where: path });
}
