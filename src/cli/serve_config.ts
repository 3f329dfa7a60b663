/**
 * Where `serve` takes its settings from, besides flags: `$INTEROP_PORT`, `$INTEROP_HOST`, `$INTEROP_DATA_DIR`,
 * `$INTEROP_DATABASE_URL`, and a YAML config file (`--config FILE` or `$INTEROP_CONFIG`; JSON is YAML too) keyed by
 * the flags' long names. A flag wins over the environment, which wins over the file, which wins over the default.
 */
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, resolve } from "node:path";
import { parse } from "yaml";
import { InteropError } from "../errors.ts";
import { usageError } from "./args.ts";
import { closestWord } from "./suggest.ts";

type Env = Record<string, string | undefined>;
type OptionTypes = Record<string, { type: "string" | "boolean" }>;

/** The environment variables that stand for a serve flag. */
export const ENV_FLAGS: Record<string, string> = {
  INTEROP_PORT: "port",
  INTEROP_HOST: "host",
  INTEROP_DATA_DIR: "data-dir",
  INTEROP_DATABASE_URL: "database-url",
};

export interface LayeredArgs {
  /** The file's and the environment's settings as flags, then the command line's: parseArgs keeps the last. */
  args: string[];
  /** The keys the config file sets. */
  fromConfig: ReadonlySet<string>;
  /** A usage error about a flag whose value came from the file or the environment, saying so. */
  explain(error: unknown): unknown;
}

/**
 * Puts the config file's and the environment's settings before `args`. `--config FILE` (else `$INTEROP_CONFIG`)
 * names the file; `options` are serve's flags (`config` and `help` cannot be set in the file).
 */
export function layerServeArgs(args: string[], env: Env, options: OptionTypes): LayeredArgs {
  const file = configFile(args) ?? (env.INTEROP_CONFIG || undefined);
  const origins = new Map<string, string>();
  const fromConfig = new Set<string>();
  const fromFile = file === undefined ? [] : readConfig(file, options, env.HOME || homedir(), (key) => {
    fromConfig.add(key);
    origins.set(key, `key "${key}" of config ${file}`);
  });
  const fromEnv = Object.entries(ENV_FLAGS).flatMap(([name, flag]) => {
    const value = env[name];
    if (value === undefined || value === "") return [];
    origins.set(flag, `$${name}`);
    return [`--${flag}=${value}`];
  });
  // Given on the command line, a flag is the command line's; given in the environment, the environment's (each is
  // passed once: a flag given twice is refused as a mistake).
  const flagOf = (arg: string) => /^--([a-z0-9-]+)/.exec(arg)?.[1];
  const onCommandLine = new Set(args.map(flagOf));
  for (const flag of onCommandLine) if (flag !== undefined) origins.delete(flag);
  const inEnv = new Set(fromEnv.map(flagOf));
  return {
    args: [
      ...fromFile.filter((arg) => !onCommandLine.has(flagOf(arg)) && !inEnv.has(flagOf(arg))),
      ...fromEnv.filter((arg) => !onCommandLine.has(flagOf(arg))),
      ...args,
    ],
    fromConfig,
    explain(error) {
      if (!(error instanceof InteropError) || error.code !== "usage") return error;
      const flag = /^Invalid --([a-z-]+)/.exec(error.message)?.[1];
      const origin = flag === undefined ? undefined : origins.get(flag);
      return origin === undefined ? error : new InteropError("usage", `${error.message} (from ${origin})`, { cause: error });
    },
  };
}

/** `--config FILE` or `--config=FILE` from the command line, if given. */
function configFile(args: string[]): string | undefined {
  let file: string | undefined;
  for (const [index, arg] of args.entries()) {
    if (arg === "--config") file = args[index + 1];
    else if (arg.startsWith("--config=")) file = arg.slice("--config=".length);
  }
  return file;
}

/** The file's settings as `--flag=value` arguments; refuses, naming the file and key, what serve has no flag for. */
function readConfig(file: string, options: OptionTypes, home: string, given: (key: string) => void): string[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (cause) {
    throw new InteropError("usage", `Cannot read config ${file}: ${(cause as Error).message}`, { cause });
  }
  let settings: unknown;
  try {
    // One document, no custom tags: a config is plain settings.
    settings = parse(text, { strict: true, uniqueKeys: true });
  } catch (cause) {
    const reason = (cause as Error).message.split("\n")[0];
    throw new InteropError("usage", `Invalid config ${file}: not YAML or JSON (${reason})`, { cause });
  }
  if (typeof settings !== "object" || settings === null || Array.isArray(settings)) {
    throw new InteropError("usage", `Invalid config ${file}: it must map serve's flags to values, e.g. "port: 18901"`);
  }
  return Object.entries(settings).flatMap(([key, value]) => {
    const option = key === "config" || key === "help" || !Object.hasOwn(options, key) ? undefined : options[key];
    if (option === undefined) {
      const near = closestWord(key, Object.keys(options).filter((name) => name !== "config" && name !== "help"));
      const hint = near === undefined ? "" : ` (did you mean "${near}"?)`;
      throw usageError("serve", `Invalid config ${file}: unknown key "${key}"${hint}; the keys are serve's long flag names (port, host, data-dir, …)`);
    }
    given(key);
    if (option.type === "boolean") {
      if (typeof value !== "boolean") throw usageError("serve", `Invalid config ${file}: key "${key}" must be true or false`);
      return value ? [`--${key}`] : [];
    }
    const list = Array.isArray(value) && value.every((item) => typeof item === "string") ? value.join(",") : undefined;
    if (typeof value !== "string" && typeof value !== "number" && list === undefined) {
      throw usageError("serve", `Invalid config ${file}: key "${key}" must be a string or a number`);
    }
    return [`--${key}=${key === "data-dir" ? configPath(file, String(value), home) : list ?? value}`];
  });
}

/**
 * A path in the config file, as its author meant it: `~/` is the home directory, and a relative path is relative to
 * the file (not to wherever serve was started: a unit runs from /). The shell expands neither here.
 */
function configPath(file: string, path: string, home: string): string {
  const expanded = path === "~" || path.startsWith("~/") ? home + path.slice(1) : path;
  return resolve(dirname(resolve(file)), expanded);
}

/**
 * Where the broker keeps its tokens, for the commands that work on them without it (`token`, `integrate`): a
 * flag wins over serve's environment and config file (`--config FILE`, else `$INTEROP_CONFIG`), and named the same
 * way, a database wins over a data dir, as it does for serve. Undefined when none names either.
 */
export function tokenStore(
  flags: { dataDir?: string; databaseUrl?: string; config?: string },
  env: Env,
  serveOptions: OptionTypes,
): { databaseUrl: string } | { dataDir: string } | undefined {
  if (flags.databaseUrl !== undefined) return { databaseUrl: flags.databaseUrl };
  if (flags.dataDir !== undefined) return { dataDir: flags.dataDir };
  const { args } = layerServeArgs(flags.config === undefined ? [] : ["--config", flags.config], env, serveOptions);
  const last = (flag: string) => args.findLast((arg) => arg.startsWith(`--${flag}=`))?.slice(flag.length + 3);
  const databaseUrl = last("database-url");
  if (databaseUrl !== undefined) return { databaseUrl };
  const dataDir = last("data-dir");
  return dataDir === undefined ? undefined : { dataDir };
}
