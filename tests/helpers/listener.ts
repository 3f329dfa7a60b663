/** `interop listen --out` processes for the fault tests: started, and stopped by PID with a chosen signal. */
import type { ChildProcess } from "node:child_process";
import { join } from "node:path";
import process from "node:process";
import { spawnCli } from "./cli.ts";

/** Starts `listen` for `agent`, writing to DIR/out.jsonl with its state in DIR/state.json. */
export function startListen(url: string, agent: string, dir: string): ChildProcess {
  return spawnCli(["listen", "--agent", agent, "--url", url, "--out", join(dir, "out.jsonl"), "--state", join(dir, "state.json")]);
}

export function exitOf(child: ChildProcess): Promise<number | null> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve(child.exitCode)
    : new Promise((resolve) => child.on("exit", (code) => resolve(code)));
}

/** Sends `signal` to this listener's PID and waits for it to exit. */
export async function stopListen(child: ChildProcess, signal: NodeJS.Signals): Promise<number | null> {
  const exited = exitOf(child);
  try {
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, signal);
  } catch (error) {
    // It exited after the check, before Node read its exit status: `exited` hears of it.
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
  }
  return await exited;
}

/** SIGTERMs each running child and waits for all to exit, so a test removes their directory only once they stopped writing to it. */
export async function stopAll(...children: (ChildProcess | undefined)[]): Promise<void> {
  await Promise.all(children.flatMap((child) => (child ? [stopListen(child, "SIGTERM")] : [])));
}
