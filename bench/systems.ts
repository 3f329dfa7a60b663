/** The systems the benchmark compares, each started on a free port and stopped by PID. */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { freePort, interopCommand, spawnListening } from "./processes.ts";
import { processTree } from "./load/proc.ts";
import { createCluster, type PostgresCluster, postgresBin } from "./postgres_cluster.ts";

export interface RunningSystem {
  url: string;
  /** Every broker's URL when several share one store (`url` is the first). */
  urls?: string[];
  /** The server's processes, for CPU and memory (with brokers on PostgreSQL: the brokers' and PostgreSQL's). */
  pids(): number[];
  /** Of those, the shared store's (PostgreSQL's postmaster and its backends), to show its share. */
  storePids?(): number[];
  stop(): Promise<void>;
}

export interface System {
  name: string;
  /** What it can do: the old bridge knows only hermes and openclaw, and keeps no ids to resume from. */
  fanOut: boolean;
  resume: boolean;
  start(options: { agents: string[] }): Promise<RunningSystem>;
}

/** Spawns a server that prints "listening on URL"; stopping it also runs `cleanup`. */
async function spawnServer(command: string, args: string[], cleanup: () => void = () => {}): Promise<RunningSystem> {
  const { child, url } = await spawnListening(command, args);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return { url, pids: () => processTree(child.pid!), stop: () => stopChild(child, exited, cleanup) };
}

async function stopChild(child: ChildProcess, exited: Promise<void>, cleanup: () => void): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    process.kill(child.pid!, "SIGTERM");
    const timer = setTimeout(() => process.kill(child.pid!, "SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  }
  cleanup();
}

/** Starts one interop broker; `storeArgs` choose its store (none: SQLite in the temp data dir). */
function startInterop(runtime: string, durability: string, agents: string[], storeArgs: string[] = []): Promise<RunningSystem> {
  const dataDir = mkdtempSync(join(tmpdir(), "interop-bench-"));
  const [command, prefix] = interopCommand(runtime);
  const args = [
    ...prefix, "serve", "--port", "0", "--data-dir", dataDir, "--durability", durability, "--agents", agents.join(","),
    "--rate-limit", "0", "--max-connections", "30000", "--max-pending", "10000000", "--max-agents", "100000", ...storeArgs,
  ];
  return spawnServer(command, args, () => rmSync(dataDir, { recursive: true, force: true }));
}

function interop(name: string, runtime: string, durability: string): System {
  return { name, fanOut: true, resume: true, start: ({ agents }) => startInterop(runtime, durability, agents) };
}

/** One PostgreSQL server for the whole run (initdb takes seconds); each start of a system gets a fresh database. */
let cluster: Promise<PostgresCluster> | undefined;
let stopCluster = () => Promise.resolve();

/** Stops the run's PostgreSQL server, if one was started; run.ts calls it once, however the run ends. */
export function stopPostgres(): Promise<void> {
  return stopCluster();
}

/** Whether the PostgreSQL systems can run: Debian's postgresql installed, and root to run it as its own user. */
export function postgresAvailable(): string | undefined {
  if (postgresBin() === undefined) return "PostgreSQL is not installed: apt-get install postgresql";
  if (process.getuid?.() !== 0) return "the PostgreSQL systems need root: initdb and postgres run as the postgres user through runuser";
  return undefined;
}

/** `brokers` Node-binary brokers, strict, on one PostgreSQL database, each on its own port. */
function interopPostgres(brokers: number): System {
  return {
    name: `interop on PostgreSQL, ${brokers} broker${brokers === 1 ? "" : "s"}`,
    fanOut: true,
    resume: true,
    async start({ agents }) {
      const server = await (cluster ??= createCluster((stop) => (stopCluster = stop)));
      const database = await server.createDatabase();
      const running: RunningSystem[] = [];
      const stop = async () => {
        for (const broker of running) await broker.stop();
        await server.dropDatabase(database);
      };
      try {
        for (let n = 0; n < brokers; n++) running.push(await startInterop("binary", "strict", agents, ["--database-url", database]));
      } catch (error) {
        await stop();
        throw error;
      }
      const storePids = () => processTree(server.pid()!);
      return {
        url: running[0].url,
        urls: running.map((broker) => broker.url),
        pids: () => [...running.flatMap((broker) => broker.pids()), ...storePids()],
        storePids,
        stop,
      };
    },
  };
}

function bare(name: string, runtime: string): System {
  const [command, prefix] = runtime === "deno" ? ["node_modules/.bin/deno", ["run", "-A"]] : [process.execPath, []];
  return {
    name,
    fanOut: true,
    resume: false,
    start: () => spawnServer(command, [...prefix, "bench/peers/bare_broker.ts", "0"]),
  };
}

const oldBridge: System = {
  name: "old Python bridge",
  fanOut: false,
  resume: false,
  start: () => spawnServer("python3", ["bench/peers/old_bridge.py", "0"]),
};

/**
 * nginx + nchan with the same routes: `to=` and `agent=` name the channel, EventSource subscribers, and a
 * message buffer deep enough that nothing is dropped under the load (so Last-Event-ID resumes too).
 */
/** Where Debian's libnginx-mod-nchan puts the module. */
const NCHAN_MODULE = "/usr/lib/nginx/modules/ngx_nchan_module.so";

const nchan: System = {
  name: "nginx + nchan",
  fanOut: true,
  resume: true,
  async start() {
    const dir = mkdtempSync(join(tmpdir(), "interop-bench-nchan-"));
    const port = await freePort();
    writeFileSync(join(dir, "nginx.conf"), `
load_module ${NCHAN_MODULE};
daemon off;
worker_processes 1;
worker_rlimit_nofile 40000;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 30000; }
http {
  access_log off;
  client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
  nchan_max_reserved_memory 512M;
  server {
    listen 127.0.0.1:${port};
    location = /broadcast { nchan_publisher; nchan_channel_id $arg_to; nchan_message_buffer_length 1000000; nchan_message_timeout 1h; }
    location = /subscribe { nchan_subscriber eventsource; nchan_channel_id $arg_agent; }
    location = /status { nchan_stub_status; }
  }
}
`);
    const child = spawn("nginx", ["-e", join(dir, "error.log"), "-c", join(dir, "nginx.conf")], { stdio: "ignore" });
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    // nginx prints nothing once it is up: it is ready when its port answers.
    await waitForPort(port, () => readFileSync(join(dir, "error.log"), "utf8"));
    return {
      url: `http://127.0.0.1:${port}`,
      pids: () => processTree(child.pid!),
      stop: () => stopChild(child, exited, () => rmSync(dir, { recursive: true, force: true })),
    };
  },
};

async function waitForPort(port: number, log: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    try {
      await fetch(`http://127.0.0.1:${port}/status`);
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  throw new Error(`nginx did not answer on port ${port}: ${log()}`);
}

export const SYSTEMS: Record<string, System> = {
  "interop-node": interop("interop (Node 24 binary)", "binary", "strict"),
  "interop-node-relaxed": interop("interop (Node 24 binary, relaxed)", "binary", "relaxed"),
  "interop-deno": interop("interop (Deno 2)", "deno", "strict"),
  "old-bridge": oldBridge,
  nchan,
  "bare-node": bare("bare node:http", "node"),
  "bare-deno": bare("bare Deno.serve", "deno"),
  "interop-postgres-1": interopPostgres(1),
  "interop-postgres-2": interopPostgres(2),
  "interop-postgres-3": interopPostgres(3),
};

export function nchanAvailable(): boolean {
  return existsSync(NCHAN_MODULE);
}
