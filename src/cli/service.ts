/** `interop service`: run the broker, and agents' listeners, under systemd (install, uninstall, status). */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import { InteropError } from "../errors.ts";
import {
  environmentFilePath,
  isInteropUnit,
  renderEnvironment,
  renderUnit,
  type Scope,
  type Target,
  UNIT_NAME,
  unitDir,
  unitName,
  unitPath,
} from "../service/unit.ts";
import { agentFlag, parseFlags, usageError } from "./args.ts";
import { oneOf } from "./commands.ts";
import type { Io } from "./io.ts";
import { OPTIONS as LISTEN_OPTIONS } from "./listen.ts";
import { OPTIONS as SERVE_OPTIONS } from "./serve.ts";
import { executable, type Flag, listenUnit, serveUnit } from "./service_units.ts";

export const HELP = `interop service — run the broker and listeners under systemd

Usage: interop service install [--system] [--dry-run] [--exec PATH] [SERVE OPTIONS]
       interop service install [--system] [--dry-run] [--exec PATH] listen -a AGENT [LISTEN OPTIONS]
       interop service uninstall [--system] [listen -a AGENT]
       interop service status [--system]

'install' writes a systemd unit that runs 'interop serve' with every serve option given
(see 'interop serve --help') and what serve would take from this shell's $INTEROP_PORT,
$INTEROP_HOST, $INTEROP_DATA_DIR and $INTEROP_CONFIG (the unit does not see them);
--port 18900 and the default data dir only when neither these nor the config file set
them. It restarts the broker when it fails (not when another broker holds the port or
data dir: the broker's own locks make a second copy impossible), then enables and starts
it with systemctl. A user unit by default (~/.config/systemd/user/${UNIT_NAME}; add
'loginctl enable-linger' to start it at boot); --system writes
/etc/systemd/system/${UNIT_NAME}, run by a dynamic user with its data in /var/lib/interop:
it can write nothing else, so a data dir, --out or --state outside its state directory,
or a --pipe, is refused (install a user unit for those). Prints each thing it does;
--dry-run prints the unit and changes nothing.

'install listen' writes interop-listen-AGENT.service, which runs 'interop listen' with the
listen options given (see 'interop listen --help'), e.g. the always-on OpenClaw listener:
  interop service install listen -a openclaw --openclaw http://127.0.0.1:18789 --openclaw-wait \\
    --push-token-file ~/.openclaw/hooks-token --token-file ~/.config/interop/openclaw.token
A unit does not see your shell's environment: pass secrets as files (--token-file,
--push-token-file, --secret-file); $INTEROP_URL is written into the unit as --url.
The broker's --database-url (or $INTEROP_DATABASE_URL) goes into interop.env beside the
unit, mode 600, never into its command line: ps and 'systemctl show' let anyone read that.
So does a listener's broker URL with a user or password in it (--url or $INTEROP_URL): into
interop-listen-AGENT.env as INTEROP_URL; and its push URL with one (--a2a, --openclaw,
--post, --hermes-webhook), as INTEROP_A2A_URL, INTEROP_OPENCLAW_URL, … (listen reads it there),
as does a push URL given by one of those variables. An install whose unit needs no such
file removes the one an earlier install left.

'status' lists interop's units and shows them with systemctl status.

Options:
  --system            a system unit instead of a user unit (needs root)
  --dry-run           print the unit (and where it would go) and stop
  --port N            the port the broker listens on (default $INTEROP_PORT, the config's,
                      else 18900)
  --data-dir DIR      the broker's data dir (default $INTEROP_DATA_DIR, the config's, else
                      the user's, or /var/lib/interop)
  --exec PATH         the interop executable to run (default: this one, or interop on PATH)
  -h, --help          show this help

Exit codes: 0 done, 1 systemctl failed (the message says what to run), 2 bad usage,
3 (status) not installed.
`;

export const WORDS = ["install", "uninstall", "status"] as const;

const OWN_OPTIONS = {
  system: { type: "boolean", default: false },
  "dry-run": { type: "boolean", default: false },
  exec: { type: "string" },
  help: { type: "boolean", short: "h", default: false },
} as const;

/** The service's own options and every serve option, which `install` writes into the broker's unit. */
export const OPTIONS = { ...SERVE_OPTIONS, ...OWN_OPTIONS } as const;

export function run(args: string[], io: Io): Promise<number> {
  // `listen` ends the service's own options; what follows is the listener's (whose --exec is another thing).
  const split = optionTokens(args, OPTIONS).find((token) => token.kind === "positional" && token.value === "listen");
  const [own, listenArgs] = split === undefined ? [args, undefined] : [args.slice(0, split.index), args.slice(split.index + 1)];
  const { values, positionals } = parseFlags("service", own, OPTIONS, true);
  if (values.help) {
    io.stdout(HELP);
    return Promise.resolve(0);
  }
  const scope: Scope = values.system ? "system" : "user";
  const systemctl = (...commands: string[][]) => runSystemctl(scope, commands, io);
  const serveFlags = flagsGiven(own, OPTIONS).filter(([name]) => !Object.hasOwn(OWN_OPTIONS, name));
  let target: Target = { kind: "serve" };
  let listenFlags: Flag[] = [];
  if (listenArgs !== undefined) {
    if (serveFlags.length > 0) {
      throw usageError("service", `--${serveFlags[0][0]} is a serve option: a listener takes listen options, after 'listen'`);
    }
    // Everything after 'listen' is the listener's: a service option there would be refused as unknown, though
    // --help lists it; say where it goes instead. (--exec after 'listen' is listen's own.)
    const misplaced = optionTokens(listenArgs, LISTEN_OPTIONS).find((token) =>
      token.kind === "option" && Object.hasOwn(OWN_OPTIONS, token.name) && !Object.hasOwn(LISTEN_OPTIONS, token.name)
    );
    if (misplaced?.kind === "option") {
      throw usageError("service", `${misplaced.rawName} is a service option: put it before 'listen' (interop service ${positionals[0] ?? "install"} ${misplaced.rawName} listen -a AGENT …)`);
    }
    const listen = parseFlags("service", listenArgs, LISTEN_OPTIONS).values;
    if (listen.help) throw usageError("service", "For the listener's options see 'interop listen --help'");
    target = { kind: "listen", agent: agentFlag("service", "--agent", listen.agent, io.env) };
    listenFlags = lastOfEach(flagsGiven(listenArgs, LISTEN_OPTIONS).filter(([name]) => name !== "agent"));
  }
  const name = unitName(target);
  const path = unitPath(scope, io.env, target);
  switch (positionals[0]) {
    case "install": {
      // The flags first: a bad one is the error to report, not a missing executable.
      const { args: unitArgs, environment } = target.kind === "serve"
        ? serveUnit(serveFlags, scope, io)
        : listenUnit(listenFlags, target.agent, scope, io);
      const command = [executable(values.exec, io.env), target.kind, ...unitArgs];
      const environmentFile = environment === undefined ? undefined : environmentFilePath(scope, io.env, target);
      const unit = renderUnit(scope, command, target, environmentFile);
      const environmentText = environment === undefined ? "" : renderEnvironment(environment);
      if (values["dry-run"]) {
        io.stderr(`# would write ${path}:\n`);
        io.stdout(unit);
        // Its value is not printed: it may hold a password.
        if (environmentFile !== undefined) io.stderr(`# and ${environmentFile} (mode 600) setting ${Object.keys(environment!).join(", ")}\n`);
        return Promise.resolve(0);
      }
      mkdirSync(dirname(path), { recursive: true });
      if (environmentFile !== undefined) {
        // A new file put in place of the old: the old one may have been readable by others, and one of them may
        // hold it open (a chmod, or writing in place, would hand them the password).
        const fresh = `${environmentFile}.new`;
        rmSync(fresh, { force: true });
        writeFileSync(fresh, environmentText, { mode: 0o600, flag: "wx" });
        renameSync(fresh, environmentFile);
        io.stdout(`wrote ${environmentFile} (mode 600)\n`);
      }
      writeFileSync(path, unit);
      io.stdout(`wrote ${path}\n`);
      // One left by an earlier install would keep its password on disk, though the new unit no longer reads it.
      const oldEnvironmentFile = environmentFilePath(scope, io.env, target);
      if (environmentFile === undefined && existsSync(oldEnvironmentFile)) {
        rmSync(oldEnvironmentFile);
        io.stdout(`removed ${oldEnvironmentFile} (the new unit reads none)\n`);
      }
      systemctl(["daemon-reload"], ["enable", "--now", name]);
      const what = target.kind === "serve" ? "interop" : `interop listen for ${target.agent}`;
      io.stdout(`${what} is running under systemd; see: systemctl${scope === "user" ? " --user" : ""} status ${name}\n`);
      return Promise.resolve(0);
    }
    case "uninstall": {
      if (!existsSync(path)) throw usageError("service", `Nothing to uninstall: ${path} does not exist`);
      try {
        systemctl(["disable", "--now", name]);
      } finally {
        rmSync(path);
        io.stdout(`removed ${path}\n`);
        const environmentFile = environmentFilePath(scope, io.env, target);
        if (existsSync(environmentFile)) {
          rmSync(environmentFile);
          io.stdout(`removed ${environmentFile}\n`);
        }
      }
      systemctl(["daemon-reload"]);
      return Promise.resolve(0);
    }
    case "status": {
      const dir = unitDir(scope, io.env);
      const units = existsSync(dir) ? readdirSync(dir).filter(isInteropUnit).sort() : [];
      if (units.length === 0) {
        io.stdout(`not installed (no ${unitPath(scope, io.env)}); 'interop service install' sets it up\n`);
        return Promise.resolve(3);
      }
      for (const unit of units) io.stdout(`unit: ${join(dir, unit)}\n`);
      systemctl(["status", "--no-pager", ...units]);
      return Promise.resolve(0);
    }
    default:
      throw usageError("service", `Say what to do: ${oneOf(WORDS)}`);
  }
}

function optionTokens(args: string[], options: ParseArgsOptionsConfig) {
  return parseArgs({ args, options, allowPositionals: true, strict: false, tokens: true }).tokens;
}

/** The options given in `args` (already checked by parseFlags), by long name, in order. */
function flagsGiven(args: string[], options: ParseArgsOptionsConfig): Flag[] {
  return optionTokens(args, options).flatMap((token) => token.kind === "option" ? [[token.name, token.value] as Flag] : []);
}

/** Each flag once: a switch may be given twice (`-v -v`); a flag with a value given twice parseFlags refused. */
function lastOfEach(flags: Flag[]): Flag[] {
  return [...new Map(flags.map(([name, value]) => [name, value] as const)).entries()];
}

/**
 * Runs systemctl commands in turn, echoing each; a failure names the commands still to run by hand (the one that
 * failed and those after it), so that a unit written where systemd is not running yet can be started later.
 */
function runSystemctl(scope: Scope, commands: string[][], io: Io): void {
  const argsOf = (command: string[]) => [...(scope === "user" ? ["--user"] : []), ...command];
  for (const [index, command] of commands.entries()) {
    const args = argsOf(command);
    io.stdout(`$ systemctl ${args.join(" ")}\n`);
    const result = spawnSync("systemctl", args, { encoding: "utf8", stdio: ["ignore", "inherit", "pipe"] });
    if (result.status === 0) continue;
    const why = result.error?.message ?? result.stderr.trim().split("\n").at(-1) ?? `exit ${result.status}`;
    const rest = commands.slice(index).map((left) => `systemctl ${argsOf(left).join(" ")}`).join(" && ");
    throw new InteropError("service_failed", `systemctl ${args.join(" ")} failed: ${why}; once systemd is running, run: ${rest}`);
  }
}
