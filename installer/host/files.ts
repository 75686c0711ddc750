import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { chmod, copyFile, mkdir, open, readFile, rename, rm, stat, unlink } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { AirlockError, errnoCode } from "../../registry/oci/index.js";

/**
 * The host's file system seen from a root: `/` on a real host, a temporary folder in tests (and for
 * preparing an image). Paths are given as the host sees them (`/etc/rancher/k3s/config.yaml`); every
 * write is atomic and durable (temp file, fsync, rename, fsync of the folder), and reports whether
 * it changed anything, so a re-run knows what to restart.
 */
export class HostRoot {
  readonly root: string;

  constructor(root = "/") {
    this.root = resolve(root);
  }

  /** Where a host path lies under this root. */
  path(hostPath: string): string {
    if (!hostPath.startsWith("/")) {
      throw new AirlockError("HOST_PATH_INVALID", `${hostPath} is not an absolute host path`, {
        where: hostPath,
        hint: "host paths are given as the host sees them, starting with /",
      });
    }
    return join(this.root, hostPath);
  }

  async exists(hostPath: string): Promise<boolean> {
    try {
      await stat(this.path(hostPath));
      return true;
    } catch (error) {
      if (errnoCode(error) === "ENOENT") return false;
      throw hostError(error, hostPath, "read");
    }
  }

  /** Writes `content` with `mode` unless the file already holds exactly that; true when it wrote. */
  async writeFile(hostPath: string, content: string | Buffer, mode: number): Promise<boolean> {
    const target = this.path(hostPath);
    const bytes = typeof content === "string" ? Buffer.from(content) : content;
    const current = await readFile(target).catch((error: unknown) => {
      if (errnoCode(error) === "ENOENT") return undefined;
      throw hostError(error, hostPath, "read");
    });
    if (current !== undefined && current.equals(bytes)) {
      await chmod(target, mode);
      return false;
    }
    await this.replace(hostPath, mode, async (temp) => {
      const handle = await open(temp, "w", mode);
      try {
        await handle.writeFile(bytes);
        await handle.datasync();
      } finally {
        await handle.close();
      }
    });
    return true;
  }

  /** Copies `source` (a file anywhere) to a host path unless it already has the same bytes. */
  async installFile(source: string, hostPath: string, mode: number): Promise<boolean> {
    const target = this.path(hostPath);
    if ((await sha256OfFile(target)) === (await sha256OfFile(source))) {
      await chmod(target, mode);
      return false;
    }
    await this.replace(hostPath, mode, async (temp) => {
      await copyFile(source, temp);
      const handle = await open(temp, "r+");
      try {
        await handle.datasync();
      } finally {
        await handle.close();
      }
    });
    return true;
  }

  /** The sha256 (hex) of a host file's bytes, streamed; undefined when there is none. */
  async sha256(hostPath: string): Promise<string | undefined> {
    return sha256OfFile(this.path(hostPath)).catch((error: unknown) => {
      throw hostError(error, hostPath, "read");
    });
  }

  /** Renames one host file over another in one step (then syncs the folder): the target is never half written. */
  async rename(fromHostPath: string, toHostPath: string): Promise<void> {
    try {
      await rename(this.path(fromHostPath), this.path(toHostPath));
      await syncFolder(dirname(this.path(toHostPath)));
    } catch (error) {
      throw hostError(error, toHostPath, "write");
    }
  }

  async remove(hostPath: string): Promise<void> {
    await rm(this.path(hostPath), { force: true }).catch((error: unknown) => {
      throw hostError(error, hostPath, "write");
    });
  }

  async readFile(hostPath: string): Promise<string | undefined> {
    try {
      return await readFile(this.path(hostPath), "utf8");
    } catch (error) {
      if (errnoCode(error) === "ENOENT") return undefined;
      throw hostError(error, hostPath, "read");
    }
  }

  /** Removes a file; true when there was one. */
  async removeFile(hostPath: string): Promise<boolean> {
    try {
      await unlink(this.path(hostPath));
      return true;
    } catch (error) {
      if (errnoCode(error) === "ENOENT") return false;
      throw hostError(error, hostPath, "remove");
    }
  }

  private async replace(
    hostPath: string,
    mode: number,
    fill: (temp: string) => Promise<void>,
  ): Promise<void> {
    const target = this.path(hostPath);
    const temp = `${target}.airlock-${process.pid}.partial`;
    try {
      await mkdir(dirname(target), { recursive: true, mode: 0o755 });
      await fill(temp);
      await chmod(temp, mode);
      await rename(temp, target);
      await syncFolder(dirname(target));
    } catch (error) {
      await rm(temp, { force: true });
      throw hostError(error, hostPath, "write");
    }
  }
}

/** fsync of a folder, so a rename in it survives a crash. */
async function syncFolder(folder: string): Promise<void> {
  const handle = await open(folder, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The sha256 of a file's bytes, streamed; undefined when there is no such file. */
async function sha256OfFile(path: string): Promise<string | undefined> {
  const hash = createHash("sha256");
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 }))
      hash.update(chunk as Buffer);
  } catch (error) {
    if (errnoCode(error) === "ENOENT") return undefined;
    throw error;
  }
  return hash.digest("hex");
}

function hostError(error: unknown, hostPath: string, verb: "read" | "write" | "remove"): AirlockError {
  if (error instanceof AirlockError) return error;
  const code = errnoCode(error);
  return new AirlockError("HOST_FILE_FAILED", `cannot ${verb} ${hostPath}: ${(error as Error).message}`, {
    where: hostPath,
    hint:
      code === "EACCES" || code === "EPERM"
        ? "run as root: installing on the host writes under /etc, /usr/local and /var/lib"
        : code === "ENOSPC"
          ? "the file system is full: free space, then run the same command again"
          : "check the path and its file system, then run the same command again",
    cause: error,
  });
}
