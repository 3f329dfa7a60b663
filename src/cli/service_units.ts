/** The command line (and environment file) of the systemd units `interop service install` writes: serve's and listen's. */
import { existsSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { hasSecrets } from "../client/url_credentials.ts";
import { interopCommand } from "../paths.ts";
import { listenerStateDir, type Scope, serviceDataDir } from "../service/unit.ts";
import { refuseIfMoved } from "../store/moved_store.ts";
import { parseCount, usageError } from "./args.ts";
import type { Io } from "./io.ts";
import { OUTPUTS, refuseFlagsWithoutTheirOutput } from "./listen_outputs.ts";
import { PUSH_URL_VARIABLES, type PushOutput, pushUrlFromEnv, refuseBadPushUrls } from "./push_url_variables.ts";
import { OPTIONS as SERVE_OPTIONS } from "./serve.ts";
import { ENV_FLAGS, layerServeArgs } from "./serve_config.ts";

/** A flag given, by long name, with its value (none for a boolean). */
export type Flag = [string, string | undefined];

/** A unit's arguments after its subcommand, and the variables its mode-600 environment file sets (none: no file). */
export interface UnitCommand {
  args: string[];
  environment?: Record<string, string>;
}

/** Secrets a listener reads from the environment, and the flag that gives the unit each as a file instead. */
const SECRET_FLAGS: Record<string, string> = {
  INTEROP_TOKEN: "token-file",
  OPENCLAW_HOOKS_TOKEN: "push-token-file",
  INTEROP_POST_TOKEN: "push-token-file",
  HERMES_WEBHOOK_SECRET: "secret-file",
};

/** The listener's options that name a file holding a secret (it reads them when it starts). */
const SECRET_FILE_OPTIONS = new Set(["token-file", "push-token-file", "secret-file", "a2a-token-file"]);

/** serve's environment variables, each with the flag it stands for: a unit does not see the shell's environment. */
const SERVE_VARIABLES: Record<string, string> = { ...ENV_FLAGS, INTEROP_CONFIG: "config" };

/**
 * The broker unit's serve arguments: the flags given, then what serve would take from this shell's environment
 * ($INTEROP_PORT, …, $INTEROP_CONFIG), since the unit does not see it. --port and --data-dir are written with their
 * defaults only when the config file does not set them (a flag would beat the file). The database URL goes into
 * the environment file, not the command line (a password in it would be anyone's to read): without it the broker
 * would quietly serve an empty SQLite store instead.
 */
export function serveUnit(given: Flag[], scope: Scope, io: Io): UnitCommand {
  const flags = new Map(given);
  const carried: Flag[] = Object.entries(SERVE_VARIABLES).flatMap(([variable, flag]) =>
    io.env[variable] && !flags.has(flag) ? [[flag, io.env[variable]] as Flag] : []
  );
  for (const [flag, value] of carried) flags.set(flag, value);
  // Read now, as the unit's serve will: a config it cannot read is refused here, not in a restart loop.
  const layered = layerServeArgs(flags.has("config") ? ["--config", flags.get("config")!] : [], {}, SERVE_OPTIONS);
  const port = flags.get("port") ?? (layered.fromConfig.has("port") ? undefined : SERVE_OPTIONS.port.default);
  if (port !== undefined) parseCount("service", "--port", port, 1, 65535);
  const defaultDataDir = serviceDataDir(scope, io.env);
  const configDataDir = layered.args.findLast((arg) => arg.startsWith("--data-dir="))?.slice("--data-dir=".length);
  if (scope === "system") refuseOutsideStateDirectory("--data-dir", flags.get("data-dir") ?? configDataDir ?? defaultDataDir, defaultDataDir);
  const dataDir = flags.get("data-dir") ?? (configDataDir === undefined ? defaultDataDir : undefined);
  const databaseUrl = flags.get("database-url");
  // A unit on a data dir `interop migrate` moved would fail at each start (serve refuses its store): refused here.
  if (databaseUrl === undefined && !layered.args.some((arg) => arg.startsWith("--database-url="))) {
    refuseIfMoved(resolve(dataDir ?? configDataDir!), "install a broker unit on the SQLite store");
  }
  const first: Flag[] = [...(port === undefined ? [] : [["port", port] as Flag]), ...(dataDir === undefined ? [] : [["data-dir", dataDir] as Flag])];
  const rest = [...given, ...carried].filter(([name]) => name !== "port" && name !== "data-dir" && name !== "database-url");
  const args = [...first, ...rest];
  return { args: asArgs(args), environment: databaseUrl === undefined ? undefined : { INTEROP_DATABASE_URL: databaseUrl } };
}

/**
 * A --system unit runs as a dynamic user (DynamicUser=yes), to which systemd makes the file system read-only but
 * for the unit's state directory (ProtectSystem=strict; ProtectHome=read-only), and which owns nothing elsewhere: a
 * directory it must write outside its state directory would fail at every start. Refused, saying what works.
 */
function refuseOutsideStateDirectory(flag: string, given: string, stateDirectory: string): void {
  const path = resolve(given);
  if (path === stateDirectory || path.startsWith(`${stateDirectory}/`)) return;
  throw usageError(
    "service",
    `${flag} ${path} cannot work in a --system unit: its dynamic user can write only under ${stateDirectory}; use a path there, or install a user unit (without --system)`,
  );
}

/** Options whose value is a path: made absolute, since systemd runs the unit from / (or the user's home). */
const PATH_OPTIONS = new Set(["config", "data-dir", "out", "pipe", "state", "token-file", "push-token-file", "secret-file", "a2a-token-file"]);

function asArgs(flags: Flag[]): string[] {
  return flags.flatMap(([name, value]) =>
    value === undefined ? [`--${name}`] : [`--${name}`, PATH_OPTIONS.has(name) ? resolve(value) : value]
  );
}

/** The interop to run: given, this executable, or the one on PATH, as an absolute path (systemd needs one). */
export function executable(given: string | undefined, env: Record<string, string | undefined>): string {
  const candidate = given ?? interopCommand();
  if (isAbsolute(candidate)) return candidate;
  const found = (env.PATH ?? "").split(":").map((dir) => `${dir}/${candidate}`).find((file) => existsSync(file));
  if (found === undefined) {
    throw usageError("service", `Cannot find ${candidate} on PATH: install it first (./install.sh) or pass --exec /path/to/interop`);
  }
  return found;
}

/**
 * The listener unit's arguments after `listen`, and the variables of its environment file: a secret in the broker's
 * or the push URL goes there, not into ExecStart. Refuses what the unit's listen would refuse, or could not do as a
 * --system unit's dynamic user.
 */
export function listenUnit(listenFlags: Flag[], agent: string, scope: Scope, io: Io): UnitCommand {
  const given = new Set(listenFlags.map(([name]) => name));
  const brokerUrl = given.has("url") ? listenFlags.find(([name]) => name === "url")![1] : io.env.INTEROP_URL || undefined;
  // A secret in it (a user or password, a `?token=`) goes into the environment file (listen reads $INTEROP_URL),
  // as the broker's database URL does: not into ExecStart, which ps and `systemctl show` print to anyone.
  const secretUrl = brokerUrl !== undefined && brokerUrl.split(",").some((url) => hasSecrets(url));
  const secrets: Record<string, string> = secretUrl ? { INTEROP_URL: brokerUrl } : {};
  // So does one in the push URL (--a2a, --openclaw, …): listen, given no output flag, reads it from its variable.
  const hidden = new Set(secretUrl ? ["url"] : []);
  // Two outputs are refused here, as listen refuses them: with one moved into the environment file, listen would
  // quietly take the other.
  const outputs = new Set(listenFlags.map(([name]) => name).filter((name) => (OUTPUTS as readonly string[]).includes(name)));
  if (outputs.size > 1) throw usageError("service", `Give the listener at most one output, not --${[...outputs].join(" and --")}`);
  for (const [output, variable] of Object.entries(PUSH_URL_VARIABLES)) {
    const url = listenFlags.find(([name]) => name === output)?.[1];
    if (url === undefined || !hasSecrets(url)) continue;
    secrets[variable] = url;
    hidden.add(output);
  }
  // Given no output flag, listen takes its push URL from $INTEROP_OPENCLAW_URL, … (as docs/cli.md advises for a
  // secret URL), which the unit does not see: without it the unit's listen would print every message to the
  // journal and move its cursor past them.
  const fromEnv = outputs.size === 0 ? pushUrlFromEnv(io.env) : {};
  for (const [output, url] of Object.entries(fromEnv)) secrets[PUSH_URL_VARIABLES[output as PushOutput]] = url;
  // Refused now, as the unit's listen would refuse it (exit 2, not restarted).
  refuseFlagsWithoutTheirOutput("service", { ...Object.fromEntries(listenFlags), ...fromEnv });
  refuseBadPushUrls("service", Object.fromEntries(listenFlags));
  const args = ["--agent", agent, ...asArgs(listenFlags.filter(([name]) => !hidden.has(name)))];
  if (!given.has("url") && brokerUrl !== undefined && !secretUrl) args.push("--url", brokerUrl);
  if (scope === "system") {
    if (given.has("pipe")) {
      throw usageError("service", "--pipe cannot work in a --system unit: its dynamic user has a /tmp of its own and cannot open a reader's FIFO; install a user unit (without --system) as the reader's user");
    }
    for (const flag of ["out", "state"]) {
      const file = listenFlags.find(([name]) => name === flag)?.[1];
      if (file !== undefined) refuseOutsideStateDirectory(`--${flag}`, file, listenerStateDir(agent));
    }
  }
  // A dynamic user has no home: its cursor goes in the unit's own state directory.
  if (!given.has("state") && scope === "system") args.push("--state", `${listenerStateDir(agent)}/state.json`);
  for (const [variable, flag] of Object.entries(SECRET_FLAGS)) {
    if (io.env[variable] && !given.has(flag)) io.stderr(`warning: the unit will not see $${variable}; pass --${flag} FILE\n`);
  }
  // Not refused: a setup may install the unit first and write the secret after (the unit starts listening then).
  for (const [name, value] of listenFlags) {
    if (SECRET_FILE_OPTIONS.has(name) && value !== undefined && !existsSync(resolve(value))) {
      io.stderr(`warning: --${name} ${resolve(value)} does not exist yet: the unit's listen refuses to start (and is not restarted) until it does; write it (chmod 600), then start the unit\n`);
    }
  }
  return { args, environment: Object.keys(secrets).length > 0 ? secrets : undefined };
}
