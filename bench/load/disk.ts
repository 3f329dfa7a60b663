/**
 * How long the disk takes to make an append durable: strict durability pays one fsync per commit, so this
 * figure moves interop's strict throughput between runs on a VM more than anything interop does.
 */
import { closeSync, fsyncSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** fsync latency of a 4 KiB append in the directory the brokers keep their data in: p50 and p90, in µs. */
export function fsyncLatency(samples = 300): { p50: number; p90: number } {
  const dir = mkdtempSync(join(tmpdir(), "interop-bench-disk-"));
  const fd = openSync(join(dir, "probe"), "a");
  const page = new Uint8Array(4096);
  const times: number[] = [];
  try {
    for (let i = 0; i < samples; i++) {
      writeSync(fd, page);
      const start = performance.now();
      fsyncSync(fd);
      times.push((performance.now() - start) * 1000);
    }
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
  times.sort((a, b) => a - b);
  return { p50: times[Math.floor(samples * 0.5)], p90: times[Math.floor(samples * 0.9)] };
}
