/**
 * Builds dist/interop, a single executable, offline: esbuild bundles src/main.ts into one CommonJS file, Node's
 * single-executable-application support turns it into a blob, postject injects the blob into a copy of Node 24.
 * Run it with `npm run build` (which puts the pinned Node 24 first on PATH).
 */
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import process from "node:process";
import { build } from "esbuild";
import { patchPostgres } from "./scripts/patch_postgres.ts";

const DIST = "dist";
const BUNDLE = join(DIST, "interop.cjs");
const BLOB = join(DIST, "interop.blob");
const SEA_CONFIG = join(DIST, "sea-config.json");
const EXECUTABLE = join(DIST, "interop");
/** The fuse Node's SEA loader looks for (documented in Node's single-executable-applications guide). */
const SEA_FUSE = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";

const started = performance.now();
const step = (message: string) =>
  console.error(`[${((performance.now() - started) / 1000).toFixed(1)}s] ${message}`);

const nodeMajor = Number(process.versions.node.split(".")[0]);
if ("Deno" in globalThis || nodeMajor < 24) {
  console.error(
    `error: build.ts needs Node 24 (it embeds the running Node in the executable); run it with 'npm run build'`,
  );
  process.exit(1);
}

mkdirSync(DIST, { recursive: true });
// The bundle must carry the patched client, even from a node_modules installed with --ignore-scripts.
for (const file of patchPostgres()) step(`patched ${file}`);
const buildId = sourceCommit();
step(`bundling src/main.ts with esbuild (build ${buildId})`);
await build({
  define: { INTEROP_BUILD: JSON.stringify(buildId) },
  entryPoints: ["src/main.ts"],
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node24",
  outfile: BUNDLE,
  logLevel: "warning",
});

step("making the SEA blob");
/**
 * V8 lets the young generation grow to 64 MiB per semi-space on this machine, and a burst of stream opens
 * (objects that live on) grows it to the top and keeps it resident: ~7 KiB of every idle stream's memory at
 * 10,000 streams. 16 MiB takes 3 KiB of that back (12.2 -> 9.2 KiB per stream) and, in alternating benchmark
 * runs, cost no publish throughput (`npm run bench -- --systems interop-node --scenarios throughput,streams`).
 */
const EXEC_ARGV = ["--max-semi-space-size=16"];
writeFileSync(
  SEA_CONFIG,
  JSON.stringify({ main: BUNDLE, output: BLOB, disableExperimentalSEAWarning: true, useCodeCache: true, execArgv: EXEC_ARGV }),
);
run(process.execPath, ["--experimental-sea-config", SEA_CONFIG]);

step(`copying Node ${process.version} and injecting the blob (postject)`);
rmSync(EXECUTABLE, { force: true });
copyFileSync(process.execPath, EXECUTABLE);
chmodSync(EXECUTABLE, 0o755);
const { inject } = createRequire(import.meta.url)("postject") as {
  inject(file: string, name: string, data: Buffer, options: { sentinelFuse: string }): Promise<void>;
};
// postject 1.0.0-alpha.6 warns "Can't find string offset for section name '.note…'" for Linux ELF notes; it is
// harmless (the injection works), so only that warning is silenced while it runs.
const warn = console.warn;
console.warn = (...args: unknown[]) => {
  if (!String(args[0]).includes("Can't find string offset for section name")) warn(...args);
};
try {
  await inject(EXECUTABLE, "NODE_SEA_BLOB", readFileSync(BLOB), { sentinelFuse: SEA_FUSE });
} finally {
  console.warn = warn;
}
rmSync(BLOB);
rmSync(SEA_CONFIG);

step("checking the executable");
const version = run(EXECUTABLE, ["--version"]).trim();
const megabytes = (statSync(EXECUTABLE).size / 1024 / 1024).toFixed(1);
step(`built ${EXECUTABLE} (${version}, ${megabytes} MiB)`);

/** The commit the tree is at and its date, `+changes` when it has uncommitted ones; without git, say so. */
function sourceCommit(): string {
  const git = (args: string[]) => spawnSync("git", args, { encoding: "utf8" });
  const head = git(["show", "-s", "--format=%h %cs", "HEAD"]);
  if (head.status !== 0) return "commit unknown";
  const changed = git(["status", "--porcelain", "--untracked-files=no"]).stdout.trim() !== "";
  return head.stdout.trim() + (changed ? " +changes" : "");
}

function run(command: string, args: string[]): string {
  const result = spawnSync(command, args, { encoding: "utf8" });
  if (result.status !== 0) {
    console.error(`error: ${command} ${args.join(" ")} failed:\n${result.stderr || result.error?.message}`);
    process.exit(1);
  }
  return result.stdout;
}
