/**
 * Profiles the broker's hot path (publish → commit → fan-out → SSE write): runs interop from source under
 * `node --cpu-prof` through the throughput scenario, then prints the functions with the most self time.
 * The .cpuprofile it leaves in bench/profiles/ opens as a flame graph in Chrome DevTools or speedscope.
 *
 *   npm run profile                  # 5 s of 16 publishers
 *   npm run profile -- --seconds 10 --durability relaxed
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { throughput } from "./scenarios.ts";
import { processTree } from "./load/proc.ts";
import { startBrokerProcess } from "./processes.ts";

const { values } = parseArgs({ options: { seconds: { type: "string", default: "5" }, durability: { type: "string", default: "strict" } } });
const profiles = join("bench", "profiles");
mkdirSync(profiles, { recursive: true });
const dataDir = mkdtempSync(join(tmpdir(), "interop-profile-"));
const { broker, url } = await startBrokerProcess(
  "node",
  ["--data-dir", dataDir, "--durability", values.durability, "--rate-limit", "0"],
  ["--cpu-prof", "--cpu-prof-dir", profiles],
);
const before = new Set(readdirSync(profiles));
const figures = await throughput({ url, pids: () => processTree(broker.pid!), stop: () => Promise.resolve() }, 16, Number(values.seconds));
process.kill(broker.pid!, "SIGTERM");
await new Promise((resolve) => broker.once("exit", resolve));
rmSync(dataDir, { recursive: true, force: true });
console.log(`${Math.round(figures.perSecond!)} msg/s, server ${figures.serverCpuUs!.toFixed(1)} µs/msg (under the profiler)`);

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
const file = readdirSync(profiles).find((name) => !before.has(name) && name.endsWith(".cpuprofile"))!;
const profile = JSON.parse(readFileSync(join(profiles, file), "utf8")) as { nodes: Node[]; samples: number[] };
const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
const self = new Map<string, number>();
for (const id of profile.samples) {
  const { functionName, url: source, lineNumber } = nodes.get(id)!.callFrame;
  const where = `${functionName || "(anonymous)"} ${source.replace(/^.*\/(src|node_modules)\//, "$1/")}:${lineNumber + 1}`;
  self.set(where, (self.get(where) ?? 0) + 1);
}
console.log(`\nself time, top 25 of ${profile.samples.length} samples (${join(profiles, file)}):`);
for (const [where, count] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 25)) {
  console.log(`${((100 * count) / profile.samples.length).toFixed(1).padStart(5)}%  ${where}`);
}
