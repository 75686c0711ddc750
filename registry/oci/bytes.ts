const BINARY_UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

/** A byte count for people, in binary units (`512 B`, `3.9 GiB`), as the CLI and preflight print sizes. */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < BINARY_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${BINARY_UNITS[unit]}`;
}
