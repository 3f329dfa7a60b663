/** What the benchmarks share: which interop to run (built binary, or the source on Node or Deno) and starting servers. */
import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import process from "node:process";

const COMMANDS: Record<string, string[]> = {
  binary: ["dist/interop"],
  node: [process.execPath, "src/main.ts"],
  deno: ["node_modules/.bin/deno", "run", "-A", "src/main.ts"],
};

/** The command line that runs interop on `runtime` (binary, node or deno); `runtimeFlags` go to Node or Deno. */
export function interopCommand(runtime: string, runtimeFlags: string[] = []): [string, string[]] {
  const command = COMMANDS[runtime];
  if (!command) throw new Error(`--runtime must be one of ${Object.keys(COMMANDS).join(", ")}`);
  if (runtimeFlags.length > 0 && runtime === "binary") throw new Error("runtime flags need --runtime node or deno");
  const [executable, ...rest] = command;
  return runtime === "deno" ? [executable, [rest[0], ...runtimeFlags, ...rest.slice(1)]] : [executable, [...runtimeFlags, ...rest]];
}

/** Spawns a server and resolves once it prints "listening on URL" (interop and the benchmark's peers all do). */
export async function spawnListening(command: string, args: string[]): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(command, args, { stdio: ["ignore", "ignore", "pipe"] });
  const url = await new Promise<string>((resolve, reject) => {
    let log = "";
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      log += chunk;
      const match = /listening on (http:\/\/[\d.]+:\d+)/.exec(log);
      if (match) resolve(match[1]);
    });
    child.once("exit", (code) => reject(new Error(`${command} exited ${code}: ${log.slice(-2000)}`)));
  });
  return { child, url };
}

/** Starts `interop serve` on a free port; resolves with its URL once it listens. */
export async function startBrokerProcess(
  runtime: string,
  args: string[],
  runtimeFlags: string[] = [],
): Promise<{ broker: ChildProcess; url: string }> {
  const [command, prefix] = interopCommand(runtime, runtimeFlags);
  const { child, url } = await spawnListening(command, [...prefix, "serve", "--port", "0", ...args]);
  return { broker: child, url };
}

/** A TCP port on 127.0.0.1 that was free a moment ago (for servers that must be told their port). */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Polls `check` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(check: () => T | Promise<T>, timeoutMs = 10_000, what = "condition"): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
