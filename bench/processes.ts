/** What the benchmarks share: which interop to run (built binary, or the source on Node or Deno) and starting its broker. */
import { type ChildProcess, spawn } from "node:child_process";
import process from "node:process";

const COMMANDS: Record<string, string[]> = {
  binary: ["dist/interop"],
  node: [process.execPath, "src/main.ts"],
  deno: ["node_modules/.bin/deno", "run", "-A", "src/main.ts"],
};

/** The command line that runs interop on `runtime` (binary, node or deno). */
export function interopCommand(runtime: string): [string, string[]] {
  const command = COMMANDS[runtime];
  if (!command) throw new Error(`--runtime must be one of ${Object.keys(COMMANDS).join(", ")}`);
  return [command[0], command.slice(1)];
}

/** Starts `interop serve` on a free port; resolves with its URL once it listens. */
export async function startBrokerProcess(runtime: string, args: string[]): Promise<{ broker: ChildProcess; url: string }> {
  const [command, prefix] = interopCommand(runtime);
  const broker = spawn(command, [...prefix, "serve", "--port", "0", ...args], { stdio: ["ignore", "ignore", "pipe"] });
  const url = await new Promise<string>((resolve, reject) => {
    let log = "";
    broker.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      log += chunk;
      const match = /listening on (http:\/\/\S+)/.exec(log);
      if (match) resolve(match[1]);
    });
    broker.on("exit", (code) => reject(new Error(`broker exited ${code}: ${log}`)));
  });
  return { broker, url };
}
