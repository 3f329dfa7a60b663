/** `interop service`: run the broker under systemd (install, uninstall, status). */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, isAbsolute } from "node:path";
import { InteropError } from "../errors.ts";
import { interopCommand } from "../paths.ts";
import { renderUnit, type Scope, serviceDataDir, UNIT_NAME, unitPath } from "../service/unit.ts";
import { parseCount, parseFlags, usageError } from "./args.ts";
import type { Io } from "./io.ts";

export const HELP = `interop service — run the broker under systemd

Usage: interop service install [--system] [--dry-run] [--port N] [--data-dir DIR] [--exec PATH]
       interop service uninstall [--system]
       interop service status [--system]

'install' writes a systemd unit that runs 'interop serve', restarts it when it fails (not
when another broker holds the port or data dir: the broker's own locks make a second copy
impossible), then enables and starts it with systemctl. A user unit by default
(~/.config/systemd/user/${UNIT_NAME}; add 'loginctl enable-linger' to start it at boot);
--system writes /etc/systemd/system/${UNIT_NAME}, run by a dynamic user with its data in
/var/lib/interop. Prints each thing it does; --dry-run prints the unit and changes nothing.

Options:
  --system            a system unit instead of a user unit (needs root)
  --dry-run           print the unit (and where it would go) and stop
  --port N            the port the service listens on (default 18900)
  --data-dir DIR      the broker's data dir (default: the user's, or /var/lib/interop)
  --exec PATH         the interop executable to run (default: this one, or interop on PATH)
  -h, --help          show this help

Exit codes: 0 done, 1 systemctl failed (the message says what to run), 2 bad usage,
3 (status) not installed.
`;

const OPTIONS = {
  system: { type: "boolean", default: false },
  "dry-run": { type: "boolean", default: false },
  port: { type: "string", default: "18900" },
  "data-dir": { type: "string" },
  exec: { type: "string" },
  help: { type: "boolean", short: "h", default: false },
} as const;

export function run(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseFlags("service", args, OPTIONS, true);
  if (values.help) {
    io.stdout(HELP);
    return Promise.resolve(0);
  }
  const scope: Scope = values.system ? "system" : "user";
  const path = unitPath(scope, io.env);
  const systemctl = (...command: string[]) => runSystemctl(scope, command, io);
  switch (positionals[0]) {
    case "install": {
      const port = parseCount("service", "--port", values.port, 1, 65535);
      const command = [executable(values.exec, io.env), "serve", "--port", String(port), "--data-dir", values["data-dir"] ?? serviceDataDir(scope, io.env)];
      const unit = renderUnit(scope, command);
      if (values["dry-run"]) {
        io.stderr(`# would write ${path}:\n`);
        io.stdout(unit);
        return Promise.resolve(0);
      }
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, unit);
      io.stdout(`wrote ${path}\n`);
      systemctl("daemon-reload");
      systemctl("enable", "--now", UNIT_NAME);
      io.stdout(`interop is running under systemd; see: systemctl${scope === "user" ? " --user" : ""} status ${UNIT_NAME}\n`);
      return Promise.resolve(0);
    }
    case "uninstall": {
      if (!existsSync(path)) throw usageError("service", `Nothing to uninstall: ${path} does not exist`);
      try {
        systemctl("disable", "--now", UNIT_NAME);
      } finally {
        rmSync(path);
        io.stdout(`removed ${path}\n`);
      }
      systemctl("daemon-reload");
      return Promise.resolve(0);
    }
    case "status": {
      if (!existsSync(path)) {
        io.stdout(`not installed (no ${path}); 'interop service install' sets it up\n`);
        return Promise.resolve(3);
      }
      io.stdout(`unit: ${path}\n`);
      systemctl("status", "--no-pager", UNIT_NAME);
      return Promise.resolve(0);
    }
    default:
      throw usageError("service", "Say what to do: install, uninstall or status");
  }
}

/** The interop to run: given, this executable, or the one on PATH, as an absolute path (systemd needs one). */
function executable(given: string | undefined, env: Record<string, string | undefined>): string {
  const candidate = given ?? interopCommand();
  if (isAbsolute(candidate)) return candidate;
  const found = (env.PATH ?? "").split(":").map((dir) => `${dir}/${candidate}`).find((file) => existsSync(file));
  if (found === undefined) {
    throw usageError("service", `Cannot find ${candidate} on PATH: install it first (./install.sh) or pass --exec /path/to/interop`);
  }
  return found;
}

/** Runs one systemctl command, echoing it; a failure says what to run by hand. */
function runSystemctl(scope: Scope, command: string[], io: Io): void {
  const args = [...(scope === "user" ? ["--user"] : []), ...command];
  io.stdout(`$ systemctl ${args.join(" ")}\n`);
  const result = spawnSync("systemctl", args, { encoding: "utf8", stdio: ["ignore", "inherit", "pipe"] });
  if (result.status === 0) return;
  const why = result.error?.message ?? result.stderr.trim().split("\n").at(-1) ?? `exit ${result.status}`;
  throw new InteropError("service_failed", `systemctl ${args.join(" ")} failed: ${why}; once systemd is running, run it again by hand`);
}
