/**
 * A PostgreSQL server of a test's own (bench/postgres_cluster.ts), stopped when the test (or the file) ends. As
 * root only: elsewhere the test is skipped, saying why.
 */
import process from "node:process";
import { after, type TestContext } from "node:test";
import postgres from "postgres";
import { createCluster, type PostgresCluster as TestPostgres } from "../../bench/postgres_cluster.ts";
import { brokerPool, type RunningBroker, waitFor } from "./broker.ts";
import { testStops } from "./clean_up_all.ts";

export type { TestPostgres };

const NOT_ROOT = "PostgreSQL tests need root: initdb and postgres run as the postgres user through runuser";

/**
 * Creates and starts a cluster for test `t`, stopped among the test's stops (`testStops`: registered before anything
 * starts), after what was started on it since (brokers), and even when their stops threw; resolves undefined after
 * `t.skip` when not root. `settings` go to the server as `-c name=value`.
 */
export async function startPostgres(t: TestContext, settings: Record<string, string> = {}): Promise<TestPostgres | undefined> {
  if (process.getuid?.() !== 0) {
    t.skip(NOT_ROOT);
    return undefined;
  }
  return await createCluster(testStops(t), settings);
}

/**
 * One cluster for the tests of a file (initdb takes seconds): created by the first test that asks, stopped after
 * the file's last test by a hook registered now, before anything starts.
 */
export function sharedPostgres(settings: Record<string, string> = {}): (t: TestContext) => Promise<TestPostgres | undefined> {
  let cluster: Promise<TestPostgres> | undefined;
  let stop: (() => Promise<void>) | undefined;
  after(() => stop?.());
  return async (t) => {
    if (process.getuid?.() !== 0) {
      t.skip(NOT_ROOT);
      return undefined;
    }
    cluster ??= createCluster((registered) => (stop = registered), settings);
    return await cluster;
  };
}

/**
 * `count` brokers (with `args`) on a new database of `server`, stopped after the test among its stops (`brokerPool`),
 * before the server.
 */
export async function brokersOnOneDatabase(
  t: { after(fn: () => Promise<void>): void },
  server: TestPostgres,
  count: number,
  args: string[] = [],
): Promise<{ url: string; brokers: RunningBroker[] }> {
  const url = await server.createDatabase();
  const start = brokerPool(t);
  const brokers: RunningBroker[] = [];
  for (let n = 0; n < count; n++) brokers.push(await start({ args: ["--database-url", url, ...args] }));
  return { url, brokers };
}

/** Two brokers on a new database of `cluster`'s server (`sharedPostgres`), stopped after the test; undefined once skipped. */
export async function twoBrokers(
  t: TestContext,
  cluster: (t: TestContext) => Promise<TestPostgres | undefined>,
): Promise<RunningBroker[] | undefined> {
  const server = await cluster(t);
  return server === undefined ? undefined : (await brokersOnOneDatabase(t, server, 2)).brokers;
}

/**
 * Makes every COMMIT on the server of `url` wait for a synchronous standby that never comes: the commit is flushed
 * locally, then held, so stopping the server loses its answer. Resolves once the checkpointer applied the setting
 * (in its own time): a probe's COMMIT held past 100 ms is cancelled, and the cancelled wait says so in a warning.
 * Undo with `releaseCommits`.
 */
export async function holdCommits(url: string): Promise<void> {
  const notices: string[] = [];
  const sql = postgres(url, { max: 1, onnotice: (notice) => notices.push(notice.message) });
  try {
    // Only a transaction that wrote something logged waits: the probe's table exists before commits are held.
    await sql`CREATE TABLE IF NOT EXISTS interop_test_probe (n integer)`;
    await sql`ALTER SYSTEM SET synchronous_standby_names = 'nobody'`;
    await sql`SELECT pg_reload_conf()`;
    await waitFor(async () => {
      const probe = sql`INSERT INTO interop_test_probe VALUES (1)`;
      const timer = setTimeout(() => probe.cancel(), 100);
      await probe;
      clearTimeout(timer);
      return notices.some((notice) => /synchronous replication/.test(notice));
    }, 10_000, "commits to wait for the synchronous standby");
  } finally {
    await sql.end();
  }
}

/** Undoes `holdCommits` in the server's configuration; `reload` applies it now (else at the next start). */
export async function releaseCommits(url: string, reload = true): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await sql`ALTER SYSTEM RESET synchronous_standby_names`;
    if (reload) await sql`SELECT pg_reload_conf()`;
  } finally {
    await sql.end();
  }
}

