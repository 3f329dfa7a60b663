/**
 * A PostgreSQL server of one's own (Debian's postgresql package) for the tests and the benchmark: a temp cluster on
 * a free port, started and stopped by PID, never a pre-started service. initdb and postgres refuse to run as root,
 * so both run as the `postgres` user through runuser, which only root can do.
 */
import { execFile } from "node:child_process";
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { promisify } from "node:util";
import postgres from "postgres";
import { freePort, waitFor } from "./processes.ts";

const run = promisify(execFile);

export interface PostgresCluster {
  /** The server's own `postgres` database, as the `postgres` superuser. */
  url: string;
  port: number;
  dataDir: string;
  /** The directory of the server's Unix socket (`.s.PGSQL.PORT`). */
  socketDir: string;
  /** Creates an empty database on this server and resolves with its URL. */
  createDatabase(): Promise<string>;
  /** Drops the database of `url` (made by `createDatabase`), closing its connections. */
  dropDatabase(url: string): Promise<void>;
  /** The postmaster's PID, from DATA_DIR/postmaster.pid, while it runs. */
  pid(): number | undefined;
  /** Starts the server (again), with `settings` added to the ones it was created with. */
  start(settings?: Record<string, string>): Promise<void>;
  /** A fast shutdown (SIGINT to the postmaster); resolves once every process of the server is gone. */
  stop(): Promise<void>;
  /** SIGKILL to the postmaster, as a crash; resolves once its orphaned backends are gone too. */
  kill(): Promise<void>;
  /** The server's log so far. */
  log(): string;
}

/** The newest PostgreSQL installed by Debian's packages, or undefined. */
export function postgresBin(): string | undefined {
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root) ? readdirSync(root).filter((name) => existsSync(join(root, name, "bin", "initdb"))) : [];
  const newest = versions.sort((a, b) => Number(b) - Number(a))[0];
  return newest === undefined ? undefined : join(root, newest, "bin");
}

/**
 * Creates and starts a cluster; `registerStop` gets the function that stops it and removes its files, before
 * anything starts. `settings` go to the server as `-c name=value`.
 */
export async function createCluster(
  registerStop: (stop: () => Promise<void>) => void,
  settings: Record<string, string> = {},
): Promise<PostgresCluster> {
  const bin = postgresBin();
  if (bin === undefined) {
    throw new Error("PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb): apt-get install postgresql (bash .ci/run does)");
  }
  const root = mkdtempSync(join(tmpdir(), "interop-test-pg-"));
  const dataDir = join(root, "data");
  const socketDir = join(root, "socket");
  const logFile = join(root, "server.log");
  let port = 0;

  const pid = () => {
    try {
      return Number(readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
    } catch {
      return undefined;
    }
  };
  /** Signals the postmaster, then waits until no process has the data dir as its working directory. */
  const signal = async (name: NodeJS.Signals) => {
    const postmaster = pid();
    if (postmaster === undefined || !isRunning(postmaster)) return;
    process.kill(postmaster, name);
    await waitFor(() => serverProcesses(dataDir).length === 0, 30_000, `PostgreSQL in ${dataDir} to exit`);
    // pg_ctl leaves the postmaster to init, which reaps it when it gets to it: until then the next postmaster takes
    // the zombie's PID in its lock files for a live server. Give init a moment, then remove the stale lock files.
    const reaped = await waitFor(() => !existsSync(`/proc/${postmaster}`), 5_000).catch(() => false);
    if (!reaped) {
      rmSync(join(dataDir, "postmaster.pid"), { force: true });
      rmSync(join(socketDir, `.s.PGSQL.${port}.lock`), { force: true });
    }
  };
  /** Runs one statement on the server's own database (CREATE and DROP DATABASE run outside a transaction). */
  const administer = async (statement: string) => {
    const sql = postgres(server.url, { max: 1, onnotice: () => {} });
    try {
      await sql.unsafe(statement);
    } finally {
      await sql.end();
    }
  };
  const server: PostgresCluster = {
    get url() {
      return `postgres://postgres@127.0.0.1:${port}/postgres`;
    },
    get port() {
      return port;
    },
    dataDir,
    socketDir,
    pid,
    async createDatabase() {
      const name = `interop_${Math.random().toString(36).slice(2, 10)}`;
      await administer(`CREATE DATABASE ${name}`);
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    },
    dropDatabase: (url) => administer(`DROP DATABASE IF EXISTS ${new URL(url).pathname.slice(1)} WITH (FORCE)`),
    async start(extra = {}) {
      const options = Object.entries({ ...settings, ...extra }).map(([name, value]) => ` -c ${name}=${value}`).join("");
      try {
        await asPostgres(bin, "pg_ctl", [
          "-D", dataDir, "-l", logFile, "-w", "-t", "30",
          "-o", `-p ${port} -k ${socketDir} -c listen_addresses=127.0.0.1${options}`,
          "start",
        ]);
      } catch (error) {
        throw new Error(`PostgreSQL did not start: ${(error as Error).message}\n${server.log().slice(-2000)}`);
      }
    },
    stop: () => signal("SIGINT"),
    kill: () => signal("SIGKILL"),
    log: () => existsSync(logFile) ? readFileSync(logFile, "utf8") : "",
  };
  registerStop(async () => {
    // SIGQUIT: an immediate shutdown; the test is over and nothing in the cluster is kept.
    await signal("SIGQUIT");
    rmSync(root, { recursive: true, force: true });
  });

  const owner = await postgresIds();
  chownSync(root, owner.uid, owner.gid);
  mkdirSync(socketDir);
  chownSync(socketDir, owner.uid, owner.gid);
  await asPostgres(bin, "initdb", ["-D", dataDir, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-locale", "--no-sync"]);
  // A free port can be taken by someone else before the server binds it: try another.
  for (let attempt = 1;; attempt++) {
    port = await freePort();
    try {
      await server.start();
      break;
    } catch (error) {
      if (attempt === 3 || !/could not bind|Address already in use/.test(server.log())) throw error;
    }
  }
  return server;
}

async function asPostgres(bin: string, program: string, args: string[]): Promise<void> {
  await run("runuser", ["-u", "postgres", "--", join(bin, program), ...args], { timeout: 60_000 });
}

async function postgresIds(): Promise<{ uid: number; gid: number }> {
  const { stdout } = await run("id", ["postgres"]);
  const uid = /uid=(\d+)/.exec(stdout);
  const gid = /gid=(\d+)/.exec(stdout);
  if (!uid || !gid) throw new Error(`No postgres user: ${stdout}`);
  return { uid: Number(uid[1]), gid: Number(gid[1]) };
}

/** Whether `pid` is a live process (a zombie, waiting for init to reap it, is not). */
function isRunning(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

/**
 * The live processes of the server in `dataDir`: the postmaster and its backends all run there, and backends
 * orphaned by a killed postmaster are found the same way.
 */
export function serverProcesses(dataDir: string): number[] {
  return readdirSync("/proc").filter((name) => /^\d+$/.test(name)).map(Number).filter((pid) => {
    try {
      return readlinkSync(`/proc/${pid}/cwd`) === dataDir && isRunning(pid);
    } catch {
      return false;
    }
  });
}
