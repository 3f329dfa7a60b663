/**
 * The benchmark: interop (the Node 24 binary, strict and relaxed, and Deno 2) against the old Python bridge it
 * replaces, nginx + nchan, and bare node:http / Deno.serve ceilings, driven with the same load in one run.
 *
 *   npm run bench                    # the full run (~13 min); writes bench/RESULTS.md
 *   npm run bench -- --smoke         # a few seconds per system, prints only (the test suite runs this)
 *   npm run bench -- --systems interop-node,nchan --scenarios latency,throughput
 *   npm run bench -- --systems interop-node,bare-node --scenarios pipelined   # one scenario alone
 *   npm run bench -- --systems postgres --smoke   # only the brokers on PostgreSQL (1, 2, 3 on one database)
 *   npm run bench -- --runs 3 --systems interop-node,interop-deno,bare-node,bare-deno --out bench/RANGES.md
 *                                    # the targets' ranges over three runs (the run-to-run noise)
 */
import { spawnSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { basename, dirname } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { fsyncLatency } from "./load/disk.ts";
import { postgresBin } from "./postgres_cluster.ts";
import { fanOut, type Figures, idleStreams, latency, resume, throughput, throughputInbox } from "./scenarios.ts";
import { nchanAvailable, postgresAvailable, type RunningSystem, stopPostgres, type System, SYSTEMS } from "./systems.ts";
import { FAN_OUT_4K, PIPELINED, POSTGRES_BROKERS, postgresKey, type Results, ratios, scaleOut, table } from "./report.ts";

const ALL_SCENARIOS = "latency,throughput,pipelined,batch,fan-out,fan-out-4k,streams,resume";
const HELP = `npm run bench -- [options]: interop against the old bridge, nchan and bare servers, under the same load

Options:
  --smoke             a few seconds per system, prints only (the test suite runs this)
  --systems A,B       the systems to run (default all): postgres, ${Object.keys(SYSTEMS).join(", ")}
  --scenarios A,B     the scenarios to run (default all): ${ALL_SCENARIOS}
  --runs N            run the selection N times: each target's range and spread, the tables from the first run
  --out FILE          where the report goes (default bench/RESULTS.md, written only by a full run)
  -h, --help          show this help

The full run takes ~13 minutes on 2 cores; progress goes to stderr. What each figure means: docs/benchmark.md.
`;
/** A one-line refusal of the command line, exit 2, as the CLI's own (no stack trace for a typo). */
function refuse(message: string): never {
  process.stderr.write(`bench: ${message} (npm run bench -- --help)\n`);
  process.exit(2);
}
const { values } = (() => {
  try {
    return parseOptions();
  } catch (error) {
    refuse((error as Error).message);
  }
})();
function parseOptions() {
  return parseArgs({
    options: {
      help: { type: "boolean", short: "h", default: false },
      smoke: { type: "boolean", default: false },
      systems: { type: "string", default: Object.keys(SYSTEMS).join(",") },
      scenarios: { type: "string", default: ALL_SCENARIOS },
      runs: { type: "string", default: "1" },
      out: { type: "string" },
    },
  });
}
if (values.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) refuse(`--runs must be a whole number ≥ 1, not ${values.runs}`);
const smoke = values.smoke;
const size = smoke
  ? { rate: 100, latencySeconds: 1, throughputSeconds: 1, fanAgents: 10, fanMessages: 20, streams: 200, resumePhase: 30 }
  : { rate: 500, latencySeconds: 10, throughputSeconds: 10, fanAgents: 100, fanMessages: 200, streams: 10_000, resumePhase: 300 };
// "postgres" names the PostgreSQL systems together, so they can be run alone.
const chosen = values.systems.split(",").flatMap((key) => key === "postgres" ? POSTGRES_BROKERS.map(postgresKey) : [key]).map((key) => {
  if (!SYSTEMS[key]) refuse(`unknown system ${key}; choose from postgres, ${Object.keys(SYSTEMS).join(", ")}`);
  return key;
});
const scenarios = new Set(values.scenarios.split(","));
const unknownScenario = [...scenarios].find((name) => !ALL_SCENARIOS.split(",").includes(name));
if (unknownScenario !== undefined) refuse(`unknown scenario ${unknownScenario}; choose from ${ALL_SCENARIOS}`);
// What the machine lacks, and the build, only once every option is known good: a typo builds nothing.
if (chosen.includes("nchan") && !nchanAvailable()) {
  throw new Error("nginx with nchan is not installed: apt-get install nginx libnginx-mod-nchan (npm test does, as root)");
}
const postgresMissing = chosen.some((key) => key.startsWith("interop-postgres")) ? postgresAvailable() : undefined;
if (postgresMissing) throw new Error(`${postgresMissing} (or leave them out: --systems without the interop-postgres-* ones)`);
if (!existsSync("dist/interop")) {
  console.error("building dist/interop first (npm run build)…");
  if (spawnSync(process.execPath, ["build.ts"], { stdio: "inherit" }).status !== 0) process.exit(1);
}

const progress = (text: string) => process.stderr.write(`${text}\n`);
const fanAgents = Array.from({ length: size.fanAgents }, (_, i) => `fan${i}`);
/** Each run's figures; the tables show the first run's, the targets each run's range. */
const runResults: Results[] = [];

/** Runs one scenario on a freshly started system, so no scenario inherits another's state. */
async function scenario(key: string, name: string, agents: string[], run: (system: RunningSystem) => Promise<Record<string, Figures>>) {
  if (!scenarios.has(name)) return;
  const system: System = SYSTEMS[key];
  progress(`  ${system.name}: ${name}…`);
  const running = await system.start({ agents });
  // The run under way is the last.
  const results = runResults.at(-1)!;
  try {
    for (const [table, figures] of Object.entries(await run(running))) (results[table] ??= {})[key] = figures;
  } catch (error) {
    (results[name] ??= {})[key] = { note: `failed: ${(error as Error).message.split("\n")[0]}` };
  } finally {
    await running.stop();
  }
}

const started = performance.now();
const diskBefore = fsyncLatency();
// The run's PostgreSQL server (started by the first PostgreSQL system) is stopped however the run ends.
try {
  for (let run = 1; run <= runs; run++) {
    runResults.push({});
    for (const key of chosen) {
      const system = SYSTEMS[key];
      progress(runs > 1 ? `${system.name} (run ${run} of ${runs})` : system.name);
      // The throughput scenario reads one inbox per broker (brokers(system) in scenarios.ts).
      const pair = ["hermes", ...(key.startsWith("interop-postgres") ? POSTGRES_BROKERS.map((n) => throughputInbox(n - 1)) : ["openclaw"])];
      await scenario(key, "latency", pair, async (s) => ({ latency: await latency(s, size.rate, size.latencySeconds) }));
      await scenario(key, "throughput", pair, async (s) => ({ throughput: await throughput(s, 16, size.throughputSeconds) }));
      // The old bridge speaks HTTP/1.0 (a connection per request) and nchan is not a broker: nothing to pipeline; the
      // PostgreSQL brokers answer in order too, but the scale-out table compares the loads they share with SQLite.
      if ((key.startsWith("interop") && !key.startsWith("interop-postgres")) || key.startsWith("bare")) {
        await scenario(key, "pipelined", pair, async (s) => ({ [PIPELINED]: await throughput(s, 16, size.throughputSeconds, 1, 8) }));
      }
      if (key.startsWith("interop")) {
        await scenario(key, "batch", pair, async (s) => ({ "throughput, batches of 50": await throughput(s, 16, size.throughputSeconds, 50) }));
      }
      if (key === "interop-node-relaxed") continue;
      if (system.fanOut) {
        await scenario(key, "fan-out", ["hub", ...fanAgents], async (s) => ({
          "fan-out": await fanOut(s, fanAgents, size.fanMessages, 50, key === "nchan" ? "all" : undefined),
        }));
        // Agents' messages are often a few KiB of text: what a broadcast of one costs to store shows here.
        await scenario(key, "fan-out-4k", ["hub", ...fanAgents], async (s) => ({
          [FAN_OUT_4K]: await fanOut(s, fanAgents, size.fanMessages, 50, key === "nchan" ? "all" : undefined, "x".repeat(4096)),
        }));
      }
      await scenario(key, "streams", pair, async (s) => {
        const { streams, status } = await idleStreams(s, size.streams, (opened) => {
          if (opened % 2000 === 0) progress(`    ${opened} streams open`);
        });
        return { "idle streams": streams, "status with 1,000 streams": status };
      });
      await scenario(key, "resume", pair, async (s) => ({ resume: await resume(s, size.resumePhase) }));
    }
  }
} finally {
  await stopPostgres();
}
const seconds = (performance.now() - started) / 1000;
const diskAfter = fsyncLatency();
const disk = (when: string, { p50, p90 }: { p50: number; p90: number }) => `${p50.toFixed(0)}/${p90.toFixed(0)} µs ${when}`;

const versions = {
  node: process.versions.node,
  deno: spawnSync("node_modules/.bin/deno", ["--version"], { encoding: "utf8" }).stdout.split("\n")[0],
  nginx: nchanAvailable() ? spawnSync("nginx", ["-v"], { encoding: "utf8" }).stderr.trim() : "not installed",
  python: spawnSync("python3", ["--version"], { encoding: "utf8" }).stdout.trim(),
  postgres: postgresAvailable() === undefined ? `PostgreSQL ${basename(dirname(postgresBin()!))}` : "PostgreSQL not run",
};
const machine = `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB`;
const report = [
  `# interop benchmark${smoke ? " (smoke run: sizes too small to mean anything)" : ""}`,
  "",
  `Command: \`npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}\` · ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC · ${seconds.toFixed(0)} s`,
  `Machine: ${machine} · Node ${versions.node} · ${versions.deno} · ${versions.nginx} · ${versions.python} · ${versions.postgres}`,
  `Disk: fsync of a 4 KiB append, p50/p90, ${disk("before the run", diskBefore)}, ${disk("after", diskAfter)} (strict durability pays one per commit)`,
  "",
  table(runResults[0], SYSTEMS),
  scaleOut(runResults[0], cpus().length),
  ratios(runResults),
].join("\n");
console.log(report);
// Only a full run replaces RESULTS.md; any other is written where --out says.
const out = values.out ?? (!smoke && chosen.length === Object.keys(SYSTEMS).length && scenarios.size === ALL_SCENARIOS.split(",").length ? "bench/RESULTS.md" : undefined);
if (out !== undefined) {
  writeFileSync(out, report);
  progress(`written to ${out}`);
}
