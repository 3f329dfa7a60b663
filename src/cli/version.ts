/** `interop version`: which interop this is. */
import { runtimeDescription } from "../runtime/serve.ts";
import { BUILD, VERSION } from "../version.ts";
import { parseFlags } from "./args.ts";
import type { Io } from "./io.ts";

export const HELP = `interop version — print interop's version

Usage: interop version [--json]

Prints 'interop VERSION (BUILD)', as 'interop --version' does: BUILD is the commit and
its date the binary was built from, or 'source' when run from src/.

Options:
  -j, --json          print {"version", "build", "runtime"} as JSON
  -h, --help          show this help

Exit codes: 0 printed, 2 bad usage.
`;

export const OPTIONS = {
  json: { type: "boolean", short: "j", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const;

export function run(args: string[], io: Io): Promise<number> {
  const { values } = parseFlags("version", args, OPTIONS);
  if (values.help) io.stdout(HELP);
  else if (values.json) io.stdout(JSON.stringify({ version: VERSION, build: BUILD, runtime: runtimeDescription() }) + "\n");
  else io.stdout(`interop ${VERSION} (${BUILD})\n`);
  return Promise.resolve(0);
}
