/** The benchmark's smoke mode, so the benchmark itself cannot rot: every system, every scenario, a few seconds each. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { postgresAvailable, SYSTEMS } from "../bench/systems.ts";

const ROOT = join(import.meta.dirname!, "..");
/** The benchmark runs on Node 24 whichever test runner starts it; the Node suite runs it once. */
const NODE_ONLY = "Deno" in globalThis ? "run by the Node suite" : false;

/** `npm run bench -- --smoke --systems … [more]`, within the test's time. */
function smoke(systems: string[], more: string[] = []) {
  const result = spawnSync(process.execPath, ["bench/run.ts", "--smoke", "--systems", systems.join(","), ...more], { cwd: ROOT, encoding: "utf8", timeout: 230_000 });
  assert.equal(result.status, 0, result.stderr);
  assert.doesNotMatch(result.stdout, /failed: /, "no scenario failed");
  assert.match(result.stdout, /^- interop: lost \+ duplicated \+ reordered messages over every scenario( of \d+ runs)?: 0 ✓$/m);
  return result;
}

test("npm run bench -- --help explains its options; a typo in one is refused in one line, exit 2, before anything runs", { skip: NODE_ONLY }, () => {
  const bench = (...args: string[]) => spawnSync(process.execPath, ["bench/run.ts", ...args], { cwd: ROOT, encoding: "utf8", timeout: 30_000 });
  const help = bench("--help");
  assert.equal(help.status, 0, help.stderr);
  for (const option of ["--smoke", "--systems", "--scenarios", "--runs", "--out"]) assert.match(help.stdout, new RegExp(`^  ${option}`, "m"));
  // An unknown scenario ran nothing and said nothing of it; the others were stack traces.
  for (const [args, said] of [
    [["--scenarios", "fanout"], /^bench: unknown scenario fanout; choose from latency,/],
    [["--systems", "nginx"], /^bench: unknown system nginx; choose from postgres, interop-node,/],
    [["--runs", "0"], /^bench: --runs must be a whole number ≥ 1, not 0/],
    [["--bogus"], /^bench: Unknown option '--bogus'/],
  ] as const) {
    const refused = bench(...args);
    assert.equal(refused.status, 2, args.join(" "));
    assert.match(refused.stderr, said);
    assert.equal(refused.stderr.split("\n").length, 2, "one line");
    assert.equal(refused.stdout, "");
  }
});

// The PostgreSQL systems run in a test of their own: each has a time limit to keep.
test("npm run bench -- --smoke runs every scenario on every system, and interop loses, repeats and reorders nothing", {
  skip: NODE_ONLY,
  timeout: 240_000,
}, () => {
  const result = smoke(Object.keys(SYSTEMS).filter((key) => !key.startsWith("interop-postgres")));
  assert.equal(result.status, 0, result.stderr);
  for (const scenario of ["latency", "throughput", "throughput, 16 × 8 pipelined", "throughput, batches of 50", "fan-out", "idle streams", "status with 1,000 streams", "resume"]) {
    assert.match(result.stdout, new RegExp(`^## ${scenario}$`, "m"), `the ${scenario} table`);
  }
  for (const system of ["interop (Node 24 binary)", "interop (Deno 2)", "old Python bridge", "nginx + nchan", "bare node:http", "bare Deno.serve"]) {
    assert.ok(result.stdout.includes(`| ${system} |`), `a row for ${system}`);
  }
});

test("npm run bench -- --runs 2 --out FILE gives each target's range over both runs, and writes the report there", {
  skip: NODE_ONLY,
  timeout: 240_000,
}, (t) => {
  const dir = mkdtempSync(join(tmpdir(), "interop-bench-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, "ranges.md");
  const result = smoke(["interop-node", "bare-node"], ["--runs", "2", "--scenarios", "fan-out", "--out", out]);
  assert.match(result.stderr, /\(run 2 of 2\)/);
  // Smoke sizes: a run's CPU time may be below the clock's tick (0 for the bare server), its ratio not had.
  assert.match(
    result.stdout,
    /^- Node: fan-out server CPU per delivery vs bare Node \(≤ 1\.5\): [\d.]+× [✓✗](?: · 2 runs: [\d.]+–[\d.]+ \(spread \d+ %\), met in [012] of 2| \(measured in 1 of 2 runs\))$/m,
  );
  assert.equal(readFileSync(out, "utf8").trim(), result.stdout.trim());
});

test("npm run bench -- --smoke --systems postgres runs one, two and three brokers on one PostgreSQL and prints the scale-out table", {
  skip: NODE_ONLY || postgresAvailable() || false,
  timeout: 240_000,
}, () => {
  const result = smoke(["postgres"]);
  for (const brokers of ["1 broker", "2 brokers", "3 brokers"]) {
    assert.ok(result.stdout.includes(`| interop on PostgreSQL, ${brokers} |`), `a row for ${brokers}`);
  }
  assert.match(result.stdout, /^## Scale-out: brokers on one PostgreSQL$/m);
  assert.match(result.stdout, /^\| 3 \| [\d,]+ \| [\d.]+× \|/m, "three brokers against one");
});

for (const runtime of ["node", "deno"]) {
  test(`npm run profile -- --runtime ${runtime} profiles the broker under load and names interop's own functions`, {
    skip: "Deno" in globalThis ? "run by the Node suite" : false,
    timeout: 60_000,
  }, () => {
    const result = spawnSync(process.execPath, ["bench/profile.ts", "--runtime", runtime, "--seconds", "1"], {
      cwd: ROOT,
      encoding: "utf8",
      timeout: 55_000,
    });
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /^\d+ msg\/s, server [\d.]+ µs\/msg \(under the profiler\)$/m);
    const file = /self time, top 25 of \d+ samples \((.+\.cpuprofile)\)/.exec(result.stdout)?.[1];
    assert.ok(file, result.stdout);
    assert.match(result.stdout, /^ *[\d.]+% +\S+ src\/\S+\.ts:\d+$/m, "a line in interop's source");
    rmSync(join(ROOT, file), { force: true });
  });
}

test("bench/core.ts measures the broker's core on the runtime running it: CPU per delivery, every publish framed for every stream", () => {
  const script = ["bench/core.ts", "--streams", "5", "--publishes", "20"];
  const result = spawnSync(process.execPath, "Deno" in globalThis ? ["run", "-A", ...script] : script, {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 55_000,
  });
  assert.equal(result.status, 0, result.stderr);
  const line = /^(node|deno) [\d.]+, strict: 20 publishes to 5 streams; per delivery ([\d.]+) µs of CPU .*; (\d+) bytes framed$/m
    .exec(result.stdout);
  assert.ok(line, result.stdout);
  assert.ok(Number(line[2]) > 0);
  // The warm-up's 20 and the measured 20, each framed for each of the 5 streams.
  assert.ok(Number(line[3]) > 40 * 5 * 100, `${line[3]} bytes for 200 events`);
});
