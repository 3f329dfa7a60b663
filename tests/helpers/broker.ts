/** Starts a real `interop serve` on a free port for a test, and stops exactly that process. */
import type { ChildProcess } from "node:child_process";
import process from "node:process";
import { testStops } from "./clean_up_all.ts";
import { spawnCli, tempDir } from "./cli.ts";
import { freePort, waitFor } from "../../bench/processes.ts";

export { freePort, waitFor };

export interface RunningBroker {
  url: string;
  port: number;
  pid: number;
  dataDir: string;
  child: ChildProcess;
  /** Everything the broker wrote to stderr so far. */
  log(): string;
  /** Resolves with the exit code once the process is gone. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends `signal` (default SIGTERM) to this broker's PID and waits for it to exit. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Stops the broker if still running and removes its data dir unless it was given. */
  cleanup(): Promise<void>;
  /** `cleanup`, so that `await using broker = await startBroker()` stops it however the test ends. */
  [Symbol.asyncDispose](): Promise<void>;
}

const LISTENING = /listening on http:\/\/([^\s:]+):(\d+)/;

export interface BrokerOptions {
  port?: number;
  dataDir?: string;
  args?: string[];
  env?: Record<string, string>;
  /** The broker's limit on open files (`ulimit -n`). */
  openFiles?: number;
}

/** Starts a broker; `port` 0 (the default) picks a free one, `dataDir` defaults to a new temporary dir. */
export async function startBroker(options: BrokerOptions = {}): Promise<RunningBroker> {
  const owned = options.dataDir === undefined ? tempDir("interop-data-") : undefined;
  const dataDir = options.dataDir ?? owned!.path;
  const child = spawnCli(
    ["serve", "--port", String(options.port ?? 0), "--data-dir", dataDir, ...(options.args ?? [])],
    options.env,
    options.openFiles,
  );
  let stderr = "";
  child.stderr!.setEncoding("utf8");
  // "close", not "exit": by then all of stderr is read, and it also comes when the process could not be started.
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal }))
  );
  const listening = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`broker did not start within 20 s; stderr:\n${stderr}`)), 20_000);
    child.stderr!.on("data", (chunk: string) => {
      stderr += chunk;
      const match = LISTENING.exec(stderr);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[2]));
      }
    });
    child.once("error", reject);
    exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`broker exited (code ${code}) before listening; stderr:\n${stderr}`));
    });
  });
  const stop = async (signal: NodeJS.Signals = "SIGTERM") => {
    // process.kill, not child.kill: Deno 2.9's child.kill() makes the exit report the signal even when the child
    // handled it and exited with its own code.
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) process.kill(child.pid, signal);
    return await exited;
  };
  let port: number;
  try {
    port = await listening;
  } catch (error) {
    // No caller holds a broker that never listened: stopped here, or it would keep the test run from ending.
    await stop("SIGKILL");
    owned?.cleanup();
    throw error;
  }
  const cleanup = async () => {
    await stop("SIGKILL");
    owned?.cleanup();
    // Every broker any test starts is checked: its log never holds a token (they all look like itk_…) nor a
    // message body sent through publish() below.
    const leaked = TOKEN_PATTERN.exec(stderr);
    if (leaked) throw new Error(`a token appeared in the broker's log: ${leaked[0].slice(0, 8)}…`);
    const body = [...publishedBodies].find((text) => stderr.includes(text));
    if (body !== undefined) throw new Error(`a message body appeared in the broker's log: ${body.slice(0, 40)}`);
  };
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    pid: child.pid!,
    dataDir,
    child,
    log: () => stderr,
    exited,
    stop,
    cleanup,
    [Symbol.asyncDispose]: cleanup,
  };
}

const TOKEN_PATTERN = /itk_[A-Za-z0-9_-]{43}/;
/** The bodies tests published (long enough not to occur by chance), looked for in every broker's log. */
const publishedBodies = new Set<string>();

/** Publishes like an old client: `POST /broadcast?from=…[&to=…]` with a JSON body. */
export async function publish(
  url: string,
  from: string,
  to: string | undefined,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Response> {
  const query = new URLSearchParams({ from });
  if (to !== undefined) query.set("to", to);
  const text = typeof body === "string" ? body : JSON.stringify(body);
  if (text.length >= 12) publishedBodies.add(text);
  return await fetch(`${url}/broadcast?${query}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: text,
  });
}

/** Takes the next question in `answerer`'s inbox and replies `body` to it (to its asker); resolves with the reply's id. */
export async function replyToNextQuestion(url: string, answerer: string, body: unknown): Promise<number> {
  const question = await waitFor(async () => (await (await fetch(`${url}/poll?agent=${answerer}`)).json())[0], 10_000, "the question");
  const replied = await fetch(`${url}/broadcast?from=${answerer}&reply_to=${question.interop.id}`, {
    method: "POST",
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  if (replied.status !== 200) throw new Error(`the reply was refused: ${replied.status} ${await replied.text()}`);
  return (await replied.json()).id;
}

/**
 * Starts brokers that are all stopped when the test ends, among the test's stops (`testStops`: its hook registered
 * before the first starts), newest first: the others too when one's cleanup finds a token in its log, and before
 * what was started ahead of them (the PostgreSQL they use).
 */
export function brokerPool(t: { after(fn: () => Promise<void>): void }): (options?: BrokerOptions) => Promise<RunningBroker> {
  const stop = testStops(t);
  return async (options) => {
    const broker = await startBroker(options);
    stop(() => broker.cleanup());
    return broker;
  };
}
