/**
 * A quick probe until `npm run bench` knows PostgreSQL: the throughput scenario (16 publishers) against one broker
 * on SQLite and one on PostgreSQL, alternating, each on fresh storage; CPU per message for the broker and, read
 * from /proc, for the PostgreSQL server (its processes run in its data dir).
 *
 *   node bench/postgres_probe.ts postgres://postgres@127.0.0.1:5432/postgres /path/to/pgdata [seconds] [rounds]
 */
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import postgres from "postgres";
import { cpuSeconds, processTree } from "./load/proc.ts";
import { spawnListening } from "./processes.ts";
import { throughput } from "./scenarios.ts";

const [url, pgData, seconds = "10", rounds = "3"] = process.argv.slice(2);
if (url === undefined || pgData === undefined) {
  console.error("usage: node bench/postgres_probe.ts POSTGRES_URL PGDATA [seconds] [rounds]");
  process.exit(2);
}

function serverPids(): number[] {
  return readdirSync("/proc").filter((name) => /^\d+$/.test(name)).map(Number).filter((pid) => {
    try {
      return readlinkSync(`/proc/${pid}/cwd`) === pgData;
    } catch {
      return false;
    }
  });
}

/** A new database on the server, so each round starts empty. */
async function freshDatabase(): Promise<string> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  const name = `interop_probe_${Math.random().toString(36).slice(2, 10)}`;
  try {
    await sql.unsafe(`CREATE DATABASE ${name}`);
  } finally {
    await sql.end();
  }
  return url.replace(/\/[^/?]*(\?|$)/, `/${name}$1`);
}

async function probe(label: string, storeArgs: string[]): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), "interop-probe-"));
  const { child, url: brokerUrl } = await spawnListening(process.execPath, [
    "src/main.ts", "serve", "--port", "0", "--data-dir", dataDir, "--rate-limit", "0", "--max-pending", "10000000",
    ...storeArgs,
  ]);
  const exited = new Promise((resolve) => child.once("exit", resolve));
  try {
    const before = cpuSeconds(serverPids());
    const figures = await throughput({ url: brokerUrl, pids: () => processTree(child.pid!), stop: () => Promise.resolve() }, 16, Number(seconds));
    const serverUs = storeArgs.length === 0 ? 0 : ((cpuSeconds(serverPids()) - before) / Number(figures.messages)) * 1e6;
    console.log(
      `${label.padEnd(10)} ${Math.round(Number(figures.perSecond))} msg/s, p50 ${Number(figures.p50).toFixed(1)} ms, ` +
        `p99 ${Number(figures.p99).toFixed(1)} ms, broker ${Math.round(Number(figures.serverCpuUs))} µs/msg` +
        (storeArgs.length === 0 ? "" : ` + PostgreSQL ${Math.round(serverUs)} µs/msg`) +
        `, lost ${figures.lost}, duplicated ${figures.duplicated}`,
    );
  } finally {
    process.kill(child.pid!, "SIGTERM");
    await exited;
    rmSync(dataDir, { recursive: true, force: true });
  }
}

for (let round = 0; round < Number(rounds); round++) {
  await probe("sqlite", []);
  await probe("postgresql", ["--database-url", await freshDatabase()]);
}
