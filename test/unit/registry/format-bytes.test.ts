import { describe, expect, it } from "vitest";
import { formatBytes } from "../../../registry/oci/index.js";

describe("formatBytes", () => {
  it("prints bytes below 1 KiB as they are, larger counts in binary units to one decimal", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(1023)).toBe("1023 B");
    expect(formatBytes(1024)).toBe("1.0 KiB");
    expect(formatBytes(1536)).toBe("1.5 KiB");
    expect(formatBytes(4 * 1024 ** 3 - 1)).toBe("4.0 GiB");
    expect(formatBytes(3 * 1024 ** 5)).toBe("3072.0 TiB");
  });
});
