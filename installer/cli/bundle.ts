import { InvalidArgumentError, type Command } from "commander";
import {
  buildBundle,
  defaultAuthFile,
  diffBundles,
  exportInventory,
  importBundle,
  inspectBundle,
  verifyBundle,
  type InspectResult,
} from "../../bundle/index.js";
import { AirlockError, formatBytes, isRegistryHost } from "../../registry/oci/index.js";
import { emit, parseSize, progressReporter, writeFileAtomically } from "./output.js";
import { withStore, type Runner } from "./context.js";

function renderInspect(result: InspectResult): string {
  const lines = [
    `bundle     ${result.bundle}`,
    `name       ${result.name} ${result.version}${result.upgradeFrom === undefined ? "" : ` (upgrades from ${result.upgradeFrom})`}`,
    `digest     ${result.digest}`,
    `created    ${result.created}`,
    `signature  ${result.signature.status}${result.signature.keyFingerprint === undefined ? "" : ` by ${result.signature.keyFingerprint}`}`,
  ];
  if (result.base !== undefined) {
    lines.push(
      `delta of   ${result.base.name} ${result.base.version} (needs ${result.base.blobs} of its blobs, ${formatBytes(result.base.bytes)})`,
    );
  }
  lines.push("images:");
  for (const image of result.images) {
    lines.push(
      `  ${image.ref.padEnd(32)} ${image.digest.slice(0, 19)}…  ${formatBytes(image.totalBytes).padStart(10)}  ${image.kind === "pack" ? "pack" : image.platforms.join(",")}`,
    );
  }
  if (result.files.length > 0) {
    lines.push("files:");
    for (const file of result.files)
      lines.push(`  ${file.path.padEnd(40)} ${formatBytes(file.size).padStart(10)}`);
  }
  lines.push(
    `totals     ${result.totals.images} images, ${result.totals.blobs} blobs (${formatBytes(result.totals.blobBytes)}), archive ${formatBytes(result.totals.archiveBytes)} in ${result.totals.parts} part(s)`,
  );
  return lines.join("\n");
}

export function registerBundle(program: Command, run: Runner): void {
  const bundle = program.command("bundle").description("build, check and import bundles");

  bundle
    .command("build")
    .description("build a signed bundle from bundle.yaml")
    .requiredOption("-f, --file <bundle.yaml>", "the bundle spec")
    .requiredOption("-o, --output <file>", "the bundle to write, e.g. mgmt-4.5.0.airlock.tar")
    .option("--sign-key <key.pem>", "sign airlock.json with this ECDSA P-256 private key")
    .option("--split-size <size>", "split into parts of at most this size (e.g. 3.9G for FAT32)")
    .option("--base <bundle>", "build a delta: leave out blobs this bundle already carries")
    .option("--base-inventory <inventory.json>", "build a delta: leave out blobs the site's inventory lists")
    .option(
      "--authfile <auth.json>",
      "registry credentials (skopeo login's auth.json) for registries bundle.yaml gives no authFile; default $REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json",
    )
    .option(
      "--insecure-registry <host[:port]>",
      "pull from this registry over plain HTTP (repeatable)",
      (host: string, hosts: string[]) => {
        if (!isRegistryHost(host))
          throw new InvalidArgumentError("expected host[:port], e.g. localhost:5000");
        return [...hosts, host];
      },
      [] as string[],
    )
    .option("--concurrency <n>", "registry blobs pulled at once, each into its place in the archive", "2")
    .action(
      async (
        flags: {
          file: string;
          output: string;
          signKey?: string;
          splitSize?: string;
          base?: string;
          baseInventory?: string;
          authfile?: string;
          insecureRegistry: string[];
          concurrency: string;
        },
        command: Command,
      ) =>
        run(command, async (context) => {
          const concurrency = Number(flags.concurrency);
          if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) {
            throw new AirlockError("USAGE", `--concurrency ${flags.concurrency} is not 1 to 64`);
          }
          const progress = await progressReporter(context.output, "build");
          const result = await buildBundle({
            specFile: flags.file,
            output: flags.output,
            signKey: flags.signKey,
            splitSize: flags.splitSize === undefined ? undefined : parseSize(flags.splitSize, "--split-size"),
            base: flags.base === undefined ? undefined : [flags.base],
            baseInventory: flags.baseInventory,
            authFile: flags.authfile ?? defaultAuthFile(),
            insecureRegistries: flags.insecureRegistry,
            concurrency,
            signal: context.signal,
            onProgress: progress.onProgress,
          }).finally(progress.stop);
          emit(context.output, result, () =>
            [
              `built ${result.name} ${result.version} → ${result.output} (${formatBytes(result.bytes)})`,
              `digest     ${result.digest}`,
              `signed     ${result.signed ? `yes, key ${result.keyFingerprint}` : "no"}`,
              ...result.images.map((image) => `  ${image.ref.padEnd(32)} ${image.digest}`),
              ...(result.base === undefined
                ? []
                : [
                    `delta of ${result.base.name} ${result.base.version}: left out ${result.base.blobsOmitted} blobs (${formatBytes(result.base.bytesOmitted)})`,
                  ]),
              ...(result.parts === undefined
                ? []
                : result.parts.map(
                    (part) => `part ${part.name} ${formatBytes(part.size)} sha256:${part.sha256}`,
                  )),
            ].join("\n"),
          );
        }),
    );

  bundle
    .command("verify")
    .description("check a bundle's signature and every entry, in one streaming pass")
    .argument("<bundle...>", "the bundle tar, its first part, its .parts.json, or every part in order")
    .option("--key <pub.pem>", "require a valid signature by this public key")
    .action(async (paths: string[], flags: { key?: string }, command: Command) =>
      run(command, async (context) => {
        const progress = await progressReporter(context.output, "verify");
        const result = await verifyBundle(paths, {
          publicKey: flags.key,
          signal: context.signal,
          onProgress: progress.onProgress,
        }).finally(progress.stop);
        emit(context.output, { ok: true, ...result }, () =>
          [
            `ok: ${result.name} ${result.version}, ${result.entries} entries, ${formatBytes(result.bytes)} in ${result.parts} part(s) checked`,
            `signature ${result.signature.status}${result.signature.keyFingerprint === undefined ? "" : ` by ${result.signature.keyFingerprint}`}`,
          ].join("\n"),
        );
      }),
    );

  bundle
    .command("inspect")
    .description("show what a bundle holds (reads only its metadata)")
    .argument("<bundle...>", "the bundle tar, its first part, or its .parts.json")
    .option("--key <pub.pem>", "also check the signature with this public key")
    .action(async (paths: string[], flags: { key?: string }, command: Command) =>
      run(command, async (context) => {
        const result = await inspectBundle(paths, { publicKey: flags.key });
        emit(context.output, result, () => renderInspect(result));
      }),
    );

  bundle
    .command("import")
    .description("verify a bundle while streaming it into the local store")
    .argument("<bundle...>", "the bundle tar, its first part, its .parts.json, or every part in order")
    .option("--key <pub.pem>", "require a valid signature by this public key")
    .action(async (paths: string[], flags: { key?: string }, command: Command) =>
      run(command, async (context) => {
        const progress = await progressReporter(context.output, "import");
        const result = await withStore(context, (store) =>
          importBundle(store, paths, {
            publicKey: flags.key,
            signal: context.signal,
            onProgress: progress.onProgress,
          }),
        ).finally(progress.stop);
        emit(context.output, result, () =>
          result.imported
            ? `imported ${result.name} ${result.version} into ${context.dataDir}: ${result.blobsWritten} blobs written (${formatBytes(result.bytesWritten)}), ${result.blobsPresent} already present; signature ${result.signature.status}`
            : `${result.name} ${result.version} is already imported (bundle ${result.digest}); nothing to do`,
        );
      }),
    );

  bundle
    .command("diff")
    .description("compare two bundles: images, files, and what a delta would carry")
    .argument("<from>", "the older bundle")
    .argument("<to>", "the newer bundle")
    .action(async (from: string, to: string, _flags: object, command: Command) =>
      run(command, async (context) => {
        const result = await diffBundles([from], [to]);
        emit(context.output, result, () =>
          [
            `${result.from.name} ${result.from.version} → ${result.to.name} ${result.to.version}`,
            ...result.images.added.map((image) => `+ ${image.ref} ${image.digest}`),
            ...result.images.removed.map((image) => `- ${image.ref} ${image.digest}`),
            ...result.images.changed.map(
              (image) => `~ ${image.ref} ${image.from.slice(0, 19)}… → ${image.to.slice(0, 19)}…`,
            ),
            ...result.images.unchanged.map((ref) => `= ${ref}`),
            ...result.files.added.map((path) => `+ ${path}`),
            ...result.files.removed.map((path) => `- ${path}`),
            ...result.files.changed.map((path) => `~ ${path}`),
            `blobs: ${result.blobs.shared} shared (${formatBytes(result.blobs.sharedBytes)}), ${result.blobs.onlyTo} new; a delta carries ${formatBytes(result.deltaBytes)}`,
          ].join("\n"),
        );
      }),
    );

  bundle
    .command("inventory")
    .description("export what this site holds, for the vendor to build a delta bundle against")
    .option("-o, --output <file>", "write the inventory here instead of stdout")
    .action(async (flags: { output?: string }, command: Command) =>
      run(command, async (context) => {
        const inventory = await withStore(context, (store) => exportInventory(store));
        if (flags.output === undefined) {
          process.stdout.write(JSON.stringify(inventory, null, 2) + "\n");
          return;
        }
        await writeFileAtomically(flags.output, JSON.stringify(inventory, null, 2) + "\n");
        emit(
          context.output,
          { output: flags.output, bundles: inventory.bundles.length, blobs: inventory.blobs.length },
          () => `wrote ${flags.output}: ${inventory.bundles.length} bundles, ${inventory.blobs.length} blobs`,
        );
      }),
    );

  bundle
    .command("ls")
    .description("list imported bundles")
    .action(async (_flags: object, command: Command) =>
      run(command, async (context) => {
        const bundles = await withStore(context, (store) => Promise.resolve(store.listBundles()));
        emit(context.output, bundles, () =>
          bundles.length === 0
            ? "no bundles imported"
            : bundles
                .map(
                  (b) =>
                    `${b.name.padEnd(12)} ${b.version.padEnd(10)} ${b.importedAt}  ${b.images.length} images  signature ${b.signature}  ${b.digest.slice(0, 19)}…`,
                )
                .join("\n"),
        );
      }),
    );
}
