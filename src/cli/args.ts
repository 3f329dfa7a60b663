/** Flag parsing shared by the subcommands: `node:util` parseArgs, with usage errors that say what to do. */
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import { readFileSync } from "node:fs";
import { blockedPort } from "../client/blocked_ports.ts";
import { BrokerClient } from "../client/broker_client.ts";
import { redactUrl } from "../url_redaction.ts";
import type { PerAgent } from "../broker/per_agent.ts";
import { InteropError } from "../errors.ts";
import { type AgentName, parseAgentName } from "../message.ts";
import { reachingHost } from "./bind_host.ts";
import { closestWord } from "./suggest.ts";

/**
 * Parses `args` strictly, with one grammar for every subcommand: an unknown option, a missing value, a value on a
 * switch or an unexpected argument is one usage error naming the option and the subcommand's --help.
 *
 * @example
 * ```ts
 * parseFlags("poll", ["-a", "hermes"], { agent: { type: "string", short: "a" } }); // values.agent === "hermes"
 * parseFlags("poll", ["--bogus"], {}); // throws: Unknown option --bogus for 'interop poll'; see 'interop poll --help'
 * ```
 */
export function parseFlags<T extends ParseArgsOptionsConfig>(
  command: string,
  args: string[],
  options: T,
  allowPositionals = false,
) {
  // Checked token by token rather than by rewording parseArgs's errors: those are several lines of Node's own
  // advice ("To specify a positional argument …"), and their wording is not an API.
  const { tokens } = parseArgs({ args, options, allowPositionals: true, strict: false, tokens: true });
  const given = new Set<string>();
  for (const token of tokens) {
    if (token.kind === "positional" && !allowPositionals) {
      throw usageError(command, `Unexpected argument ${JSON.stringify(token.value)} for 'interop ${command}'`);
    }
    if (token.kind !== "option") continue;
    const option = Object.hasOwn(options, token.name) ? options[token.name] : undefined;
    if (option === undefined) {
      // "-5 degrees" is text, not an option: say how to pass it rather than only that -5 is unknown.
      const arg = args[token.index];
      const near = token.rawName.startsWith("--") ? closestWord(token.name, Object.keys(options)) : undefined;
      const text = allowPositionals && (/\s/.test(arg) || /^-\d/.test(arg))
        ? ` (a text that starts with '-' goes after --: interop ${command} … -- ${JSON.stringify(arg)})`
        : near === undefined
        ? ""
        : ` (did you mean --${near}?)`;
      throw usageError(command, `Unknown option ${token.rawName} for 'interop ${command}'${text}`);
    }
    if (option.type === "boolean" && token.inlineValue) throw usageError(command, `Option ${token.rawName} takes no value`);
    if (option.type === "string" && token.value === undefined) throw usageError(command, `Missing value for ${token.rawName}`);
    if (option.type === "string" && !token.inlineValue && token.value!.length > 1 && token.value!.startsWith("-")) {
      throw usageError(
        command,
        `Missing value for ${token.rawName}: ${JSON.stringify(token.value)} is an option (a value that starts with '-' goes as --${token.name}=VALUE)`,
      );
    }
    // Only the last would count: `send -t a -t b` sent to b alone, exit 0.
    if (option.type === "string" && given.has(token.name)) {
      throw usageError(command, `Option --${token.name} given more than once: it takes one value`);
    }
    given.add(token.name);
  }
  // Everything strict mode refuses was refused above, so this only types the values.
  return parseArgs({ args, options, allowPositionals, strict: true });
}

export function usageError(command: string, message: string): InteropError {
  return new InteropError("usage", `${message.replace(/\.$/, "")}; see 'interop ${command} --help'`);
}

type Env = Record<string, string | undefined>;

/** An agent flag's value, else `$INTEROP_AGENT` when the flag defaults to it; a missing one says both ways to give it. */
export function agentFlag(command: string, flag: string, value: string | undefined, env?: Env): AgentName {
  const name = value ?? (env?.INTEROP_AGENT || undefined);
  if (name === undefined) throw usageError(command, `Missing ${flag} AGENT${env === undefined ? "" : " (or set $INTEROP_AGENT)"}`);
  return parseAgentName(name, flag);
}

export const DEFAULT_URL = "http://127.0.0.1:18900";

/**
 * The broker URLs: --url, else $INTEROP_URL, else the default port on loopback; several, comma-separated, are
 * brokers on one shared database, tried in turn. `HOST:PORT` means `http://HOST:PORT`, as the nats CLI and curl
 * read it; without a scheme the port is required, since the URL parser reads a bare `18931` as the IPv4 address
 * 0.0.74.243 and `localhost` as port 80.
 */
export function brokerUrls(command: string, flag: string | undefined, env: Env): string[] {
  const [given, source] = flag !== undefined ? [flag, "--url"] : env.INTEROP_URL ? [env.INTEROP_URL, "$INTEROP_URL"] : [DEFAULT_URL, ""];
  return given.split(",").map((entry) => entry.trim()).map((entry) => {
    const schemed = /^[a-z][a-z0-9+.-]*:\/\//i.test(entry);
    const text = schemed ? entry : `http://${entry}`;
    let url: URL | undefined;
    try {
      url = new URL(text);
    } catch {
      // Reported below with the fix.
    }
    if (/^\d+$/.test(entry)) {
      throw usageError(command, `Invalid ${source}: ${JSON.stringify(entry)} is a port alone; give HOST:PORT (127.0.0.1:${entry}) or http://HOST:PORT`);
    }
    if (
      entry === "" || url === undefined || (url.protocol !== "http:" && url.protocol !== "https:") || url.search !== "" || url.hash !== "" ||
      (!schemed && url.port === "" && !/^[^/]*:\d+(\/|$)/.test(entry))
    ) {
      throw usageError(
        command,
        `Invalid ${source}: ${quoteUrls(given)}; use http://HOST:PORT or HOST:PORT (several: comma-separated, A,B)`,
      );
    }
    // fetch refuses these before connecting: said here, not as an unreachable broker.
    const unreachable = blockedPort(Number(url.port || (url.protocol === "https:" ? 443 : 80)));
    if (unreachable !== undefined) throw usageError(command, `Invalid ${source}: ${quoteUrls(entry)}: ${unreachable}`);
    // Copied from an older `serve --host 0.0.0.0`'s start line (a unit, $INTEROP_URL): the broker refuses those
    // addresses as a Host (browsers send a page's requests to them unmarked), and they reach this machine anyway.
    if (url.hostname === "0.0.0.0" || url.hostname === "[::]") {
      url.hostname = reachingHost(url.hostname.replace(/^\[(.*)\]$/, "$1"));
      return url.href.replace(/\/+$/, "");
    }
    return text.replace(/\/+$/, "");
  });
}

/** Broker URLs (comma-separated) quoted for an error message, with their users and passwords hidden. */
function quoteUrls(text: string): string {
  return JSON.stringify(text.split(",").map(redactUrl).join(","));
}

/** The first broker URL (see `brokerUrls`), for commands that name one broker. */
export function brokerUrl(command: string, flag: string | undefined, env: Env): string {
  return brokerUrls(command, flag, env)[0];
}

/** The flags every command that talks to a broker takes. */
export const CLIENT_OPTIONS = {
  url: { type: "string", short: "u" },
  "token-file": { type: "string" },
} as const;

/** The help lines for CLIENT_OPTIONS. */
export const CLIENT_HELP = `  -u, --url URL       broker (default $INTEROP_URL, else ${DEFAULT_URL}; HOST:PORT
                      means http://HOST:PORT); several, A,B,C (brokers on one database):
                      tried in turn when one cannot be reached
  --token-file FILE   the agent's access token, when the broker has tokens (default
                      $INTEROP_TOKEN; never pass a token as a flag: flags show in ps)`;

/** A client for the broker the flags and environment name, with its token if any. */
export function brokerClient(
  command: string,
  values: { url?: string; "token-file"?: string },
  env: Env,
  timeoutMs?: number,
): BrokerClient {
  return new BrokerClient(brokerUrls(command, values.url, env), { timeoutMs, token: readSecret(values["token-file"], env.INTEROP_TOKEN, "$INTEROP_TOKEN") });
}

/**
 * A secret from a file (trimmed: pasted secrets often end in a newline), else from the environment (`envName` names
 * it in errors). One that goes into a header (`header`, the default) must be one word of printable ASCII: fetch
 * refuses a value with a line break or a character past ASCII and quotes the whole value (the secret) in its error,
 * or fails as if the broker were down, and a space makes the broker read a different token. What is not one word is
 * refused here, naming where it came from and never what it holds. A key that never leaves this process (an HMAC
 * secret) may hold anything but is still trimmed.
 */
export function readSecret(
  file: string | undefined,
  fromEnv: string | undefined,
  envName = "the environment",
  use: "header" | "key" = "header",
): string | undefined {
  let text: string | undefined;
  if (file === undefined) text = fromEnv;
  else {
    try {
      text = readFileSync(file, "utf8");
    } catch (cause) {
      throw new InteropError("usage", `Cannot read ${file}: ${(cause as Error).message}`, { cause });
    }
  }
  const secret = text?.trim() || undefined;
  if (secret === undefined || use === "key" || !/[^\x21-\x7e]/.test(secret)) return secret;
  const lines = secret.split(/\r?\n/).filter((line) => line.trim() !== "").length;
  // A comment or a second token is not skipped: which line is the token would be a guess.
  const what = lines > 1 ? `it holds ${lines} lines` : "it contains white space, a control character or a character past ASCII";
  const source = file ?? envName;
  throw new InteropError(
    "usage",
    `${source} does not hold one token: ${what}; it must hold the token alone` + (file === undefined ? "" : ` (as 'interop token create ... > ${file}' writes it)`),
  );
}

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/;
const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Parses a duration like `500ms`, `15s`, `2m`, `24h`; a bare number is seconds. `bounds` (in ms) refuse values a
 * flag cannot work with, such as an idle timeout of 0.
 *
 * @example
 * ```ts
 * parseDuration("serve", "--retention", "24h"); // 86400000
 * parseDuration("ask", "--timeout", "2m", { min: 1000, max: 3_600_000 }); // 120000
 * ```
 */
export function parseDuration(command: string, flag: string, value: string, bounds: { min?: number; max?: number } = {}): number {
  const match = DURATION.exec(value.trim());
  if (match === null) throw usageError(command, `Invalid ${flag}: ${JSON.stringify(value)}; use e.g. 500ms, 15s, 10m, 24h`);
  const ms = Math.round(Number(match[1]) * DURATION_UNITS[match[2] ?? "s"]);
  const { min = 0, max = Infinity } = bounds;
  if (ms < min || ms > max) {
    const range = max === Infinity ? `at least ${formatDuration(min)}` : `from ${formatDuration(min)} to ${formatDuration(max)}`;
    throw usageError(command, `Invalid ${flag}: ${JSON.stringify(value)}; use ${range}`);
  }
  return ms;
}

/** `3600000` as `1h`: the largest unit that divides it. */
function formatDuration(ms: number): string {
  if (ms === 0) return "0";
  const [unit, size] = Object.entries(DURATION_UNITS).findLast(([, size]) => ms % size === 0) ?? ["ms", 1];
  return `${ms / size}${unit}`;
}

const SIZE = /^(\d+)(B|KiB|MiB|GiB)?$/i;
const SIZE_UNITS: Record<string, number> = { b: 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };

/** Parses a byte size like `1MiB`, `512KiB`, `4096`. */
export function parseByteSize(command: string, flag: string, value: string): number {
  const match = SIZE.exec(value.trim());
  if (match === null) throw usageError(command, `Invalid ${flag}: ${JSON.stringify(value)}; use e.g. 4096, 512KiB, 1MiB`);
  return Number(match[1]) * SIZE_UNITS[(match[2] ?? "b").toLowerCase()];
}

/**
 * Parses a per-agent limit: a value for every agent, then `AGENT=VALUE` overrides, comma-separated.
 *
 * @example
 * ```ts
 * parsePerAgent("serve", "--max-pending", "100000,openclaw=500", (text) => Number(text));
 * ```
 */
export function parsePerAgent<T>(command: string, flag: string, value: string, parseOne: (text: string) => T): PerAgent<T> {
  const [fallback, ...rest] = value.split(",").map((part) => part.trim());
  const overrides = new Map<AgentName, T>();
  for (const override of rest) {
    const [agent, limit, extra] = override.split("=");
    if (limit === undefined || extra !== undefined) {
      throw usageError(command, `Invalid ${flag}: ${JSON.stringify(override)}; after the default, write AGENT=VALUE (e.g. ${flag} 100,openclaw=5)`);
    }
    overrides.set(parseAgentName(agent, flag), parseOne(limit));
  }
  return { fallback: parseOne(fallback), overrides };
}

/** Parses a whole number flag within bounds. */
export function parseCount(command: string, flag: string, value: string, min: number, max: number): number {
  const count = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(count) || count < min || count > max) {
    throw usageError(command, `Invalid ${flag}: ${JSON.stringify(value)}; use a whole number from ${min} to ${max}`);
  }
  return count;
}

/**
 * Checks a PostgreSQL URL as postgres.js will read it (`new URL`, keeping the first of several hosts), so a bad one
 * is a usage error naming the flag, not "Invalid URL" from deep in the driver. The URL is never repeated: it may
 * hold a password.
 */
export function checkDatabaseUrl(command: string, flag: string, url: string): void {
  if (!/^postgres(ql)?:\/\//.test(url)) throw usageError(command, `Invalid ${flag}: use postgres://USER@HOST:PORT/DB`);
  const authority = url.slice(url.indexOf("://") + 3).split(/[?/]/)[0];
  const hosts = authority.slice(authority.indexOf("@") + 1);
  if (!URL.canParse(url.replace(hosts, hosts.split(",")[0]))) {
    throw usageError(
      command,
      `Invalid ${flag}: not a URL (postgres://USER@HOST:PORT/DB, the port a number; a /, @, # or ? in the user or password percent-encoded, e.g. %2F)`,
    );
  }
}
