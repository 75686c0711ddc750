import type { Command } from "commander";
import { generateKeyPair } from "../../bundle/index.js";
import { emit } from "./output.js";
import type { Runner } from "./context.js";

export function registerKeys(program: Command, run: Runner): void {
  const keys = program.command("keys").description("signing keys for bundles");
  keys
    .command("generate")
    .description("make an ECDSA P-256 key pair for signing bundles")
    .option("--private-key <file>", "where to write the private key (PEM, mode 0600)", "key.pem")
    .option("--public-key <file>", "where to write the public key (PEM)", "pub.pem")
    .option("--force", "replace existing key files")
    .action(async (flags: { privateKey: string; publicKey: string; force?: boolean }, command: Command) =>
      run(command, async (context) => {
        const result = await generateKeyPair(flags.privateKey, flags.publicKey, flags.force === true);
        emit(context.output, result, () =>
          [
            `private key  ${result.privateKey} (keep it secret)`,
            `public key   ${result.publicKey}`,
            `fingerprint  ${result.fingerprint}`,
          ].join("\n"),
        );
      }),
    );
}
