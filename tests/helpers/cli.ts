/** Runs the interop CLI the way the suite was asked to: the built binary, or the source on this runtime. */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { after } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = join(ROOT, "src", "main.ts");

/**
 * The suite's own `$XDG_STATE_HOME`, in the environment of every command it runs (spawned children copy it): what a
 * command keeps there by default (`interop mcp`'s held messages, listen's state) is the run's, not the machine
 * user's, and never meets another test's broker on a port used again. A command run with a HOME of its test's gets
 * that HOME's.
 */
const STATE_HOME = mkdtempSync(join(tmpdir(), "interop-test-state-"));
process.env.XDG_STATE_HOME = STATE_HOME;
process.once("exit", () => rmSync(STATE_HOME, { recursive: true, force: true }));

/**
 * `INTEROP_CLI=dist/interop` tests the single executable; otherwise the source runs on the runtime running the
 * tests (`node src/main.ts` under `node --test`, `deno run -A src/main.ts` under `deno test`).
 */
export function cliCommand(): [string, string[]] {
  const chosen = process.env.INTEROP_CLI;
  if (chosen) return [join(ROOT, chosen), []];
  if ("Deno" in globalThis) return [process.execPath, ["run", "-A", MAIN]];
  return [process.execPath, [MAIN]];
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs one CLI command to completion (killed after `timeoutMs`). */
export function runCli(
  args: string[],
  options: { env?: Record<string, string>; input?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  const child = spawnCli(args, options.env);
  child.stdin!.end(options.input ?? "");
  return collect(child, options.timeoutMs ?? 30_000);
}

/**
 * Starts a CLI command in the background; stop it with `child.kill()` (the caller owns the PID). With `openFiles`,
 * bash sets that limit (soft and hard: Node raises its soft limit to the hard one) and then becomes the command (`exec`: the PID is the command's).
 */
export function spawnCli(args: string[], env: Record<string, string> = {}, openFiles?: number): ChildProcess {
  const [command, prefix] = cliCommand();
  const limited = openFiles === undefined ? [] : ["bash", "-c", `ulimit -n ${openFiles} && exec "$@"`, "bash"];
  const [program, ...programArgs] = [...limited, command, ...prefix, ...args];
  const child = spawn(program, programArgs, {
    env: { ...process.env, NO_COLOR: "1", ...("HOME" in env ? { XDG_STATE_HOME: "" } : {}), ...env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  running.set(child, `interop ${args.join(" ")}`);
  child.once("close", () => running.delete(child));
  return child;
}

/** Every child spawnCli started that has not exited yet, with the command it runs. */
const running = new Map<ChildProcess, string>();

// The backstop for a test whose own cleanup did not run (a test's after-hooks stop at the first that throws): what
// is still running once the file's tests have ended is SIGKILLed by PID and named, else the Node run never ends.
after(async () => {
  const left = [...running].filter(([child]) => child.pid !== undefined && child.exitCode === null && child.signalCode === null);
  for (const [child, command] of left) {
    process.stderr.write(`warning: a test left pid ${child.pid} running (${command}); killed\n`);
    try {
      process.kill(child.pid!, "SIGKILL");
    } catch (error) {
      // It exited after the check, before Node read its exit status: "close" still comes.
      if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
    }
  }
  await Promise.all(left.map(([child]) => new Promise((resolve) => child.once("close", resolve))));
});

/** Waits for a child to exit and gathers its output. */
export function collect(child: ChildProcess, timeoutMs = 30_000): Promise<CliResult> {
  let stdout = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`CLI did not exit within ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/**
 * A fresh temporary directory, removed by `cleanup`. A test's after hooks run in the order they were added, so a
 * directory's removal may come before the stop of a listener writing its state there: a file it writes meanwhile
 * fails the removal (ENOTEMPTY), which is tried again.
 */
export function tempDir(prefix = "interop-test-"): { path: string; cleanup(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  const cleanup = (): void => {
    for (let attempt = 1; ; attempt++) {
      try {
        return rmSync(path, { recursive: true, force: true });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOTEMPTY" || attempt === 50) throw error;
      }
    }
  };
  return { path, cleanup };
}
