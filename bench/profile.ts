/**
 * Profiles the broker's hot path (publish → commit → fan-out → SSE write): runs interop from source through the
 * throughput scenario (or the fan-out one: one publish to 100 streams, 50 a second) under a CPU profiler (Node's `--cpu-prof`, or Deno's inspector), then prints the functions
 * with the most self time. The .cpuprofile it leaves in bench/profiles/ opens as a flame graph in Chrome
 * DevTools or speedscope.
 *
 *   npm run profile                  # 5 s of 16 publishers, Node
 *   npm run profile -- --seconds 10 --durability relaxed --runtime deno
 *   npm run profile -- --scenario fan-out
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { type CpuProfile, startProfiling } from "./inspector.ts";
import { fanOut, throughput } from "./scenarios.ts";
import { processTree } from "./load/proc.ts";
import { freePort, startBrokerProcess } from "./processes.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "5" },
    durability: { type: "string", default: "strict" },
    runtime: { type: "string", default: "node" },
    scenario: { type: "string", default: "throughput" },
  },
});
if (values.scenario !== "throughput" && values.scenario !== "fan-out") throw new Error("--scenario must be throughput or fan-out");
if (values.runtime !== "node" && values.runtime !== "deno") throw new Error("--runtime must be node or deno");
// Deno has no --cpu-prof: its profile is taken through the inspector.
const onDeno = values.runtime === "deno";
const profiles = join("bench", "profiles");
mkdirSync(profiles, { recursive: true });
const dataDir = mkdtempSync(join(tmpdir(), "interop-profile-"));
const inspectorPort = onDeno ? await freePort() : 0;
const fanAgents = Array.from({ length: 100 }, (_, i) => `fan${i}`);
const { broker, url } = await startBrokerProcess(
  values.runtime,
  ["--data-dir", dataDir, "--durability", values.durability, "--rate-limit", "0", "--agents", ["hub", ...fanAgents].join(",")],
  onDeno ? [`--inspect=127.0.0.1:${inspectorPort}`] : ["--cpu-prof", "--cpu-prof-dir", profiles],
);
const before = new Set(readdirSync(profiles));
const stopProfiling = onDeno ? await startProfiling(inspectorPort) : undefined;
const system = { url, pids: () => processTree(broker.pid!), stop: () => Promise.resolve() };
const figures = values.scenario === "fan-out"
  ? await fanOut(system, fanAgents, 50 * Number(values.seconds), 50)
  : await throughput(system, 16, Number(values.seconds));
let file: string;
if (stopProfiling) {
  file = join(profiles, `deno-${Date.now()}.cpuprofile`);
  writeFileSync(file, JSON.stringify(await stopProfiling()));
}
process.kill(broker.pid!, "SIGTERM");
await new Promise((resolve) => broker.once("exit", resolve));
rmSync(dataDir, { recursive: true, force: true });
// Node writes its profile as it exits.
file ??= join(profiles, readdirSync(profiles).find((name) => !before.has(name) && name.endsWith(".cpuprofile"))!);
const unit = values.scenario === "fan-out" ? "delivery" : "msg";
console.log(`${Math.round(figures.perSecond ?? 0)} msg/s, server ${figures.serverCpuUs!.toFixed(1)} µs/${unit} (under the profiler)`);

const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
const self = new Map<string, number>();
for (const id of profile.samples) {
  const { functionName, url: source, lineNumber } = nodes.get(id)!.callFrame;
  const where = `${functionName || "(anonymous)"} ${source.replace(/^.*\/(src|node_modules)\//, "$1/")}:${lineNumber + 1}`;
  self.set(where, (self.get(where) ?? 0) + 1);
}
console.log(`\nself time, top 25 of ${profile.samples.length} samples (${file}):`);
for (const [where, count] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 25)) {
  console.log(`${((100 * count) / profile.samples.length).toFixed(1).padStart(5)}%  ${where}`);
}
