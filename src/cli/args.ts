/** Flag parsing shared by the subcommands: `node:util` parseArgs, with usage errors that say what to do. */
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import { readFileSync } from "node:fs";
import { BrokerClient } from "../client/broker_client.ts";
import type { PerAgent } from "../broker/per_agent.ts";
import { InteropError } from "../errors.ts";
import { type AgentName, parseAgentName } from "../message.ts";

/** Parses `args` strictly; an unknown or malformed flag is a usage error naming the subcommand's --help. */
export function parseFlags<T extends ParseArgsOptionsConfig>(
  command: string,
  args: string[],
  options: T,
  allowPositionals = false,
) {
  try {
    return parseArgs({ args, options, allowPositionals, strict: true });
  } catch (cause) {
    throw usageError(command, (cause as Error).message);
  }
}

export function usageError(command: string, message: string): InteropError {
  return new InteropError("usage", `${message.replace(/\.$/, "")}; see 'interop ${command} --help'`);
}

/** The broker URL: --url, else $INTEROP_URL, else the default port on loopback. */
export function brokerUrl(flag: string | undefined, env: Record<string, string | undefined>): string {
  return (flag ?? env.INTEROP_URL ?? "http://127.0.0.1:18900").replace(/\/+$/, "");
}

/** The flags every command that talks to a broker takes. */
export const CLIENT_OPTIONS = {
  url: { type: "string" },
  "token-file": { type: "string" },
} as const;

/** The help lines for CLIENT_OPTIONS. */
export const CLIENT_HELP = `  --url URL           broker (default $INTEROP_URL, else http://127.0.0.1:18900)
  --token-file FILE   the agent's access token, when the broker has tokens (default
                      $INTEROP_TOKEN; never pass a token as a flag: flags show in ps)`;

/** A client for the broker the flags and environment name, with its token if any. */
export function brokerClient(
  values: { url?: string; "token-file"?: string },
  env: Record<string, string | undefined>,
  timeoutMs?: number,
): BrokerClient {
  return new BrokerClient(brokerUrl(values.url, env), { timeoutMs, token: readSecret(values["token-file"], env.INTEROP_TOKEN) });
}

/** A secret from a file (trimmed: pasted secrets often end in a newline), else from the environment. */
export function readSecret(file: string | undefined, fromEnv: string | undefined): string | undefined {
  if (file === undefined) return fromEnv?.trim() || undefined;
  try {
    return readFileSync(file, "utf8").trim() || undefined;
  } catch (cause) {
    throw new InteropError("usage", `Cannot read ${file}: ${(cause as Error).message}`, { cause });
  }
}

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/;
const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Parses a duration like `500ms`, `15s`, `24h`; a bare number is seconds.
 *
 * @example
 * ```ts
 * parseDuration("serve", "--retention", "24h"); // 86400000
 * ```
 */
export function parseDuration(command: string, flag: string, value: string): number {
  const match = DURATION.exec(value.trim());
  if (match === null) throw usageError(command, `Invalid ${flag}: ${JSON.stringify(value)}; use e.g. 500ms, 15s, 10m, 24h`);
  return Math.round(Number(match[1]) * DURATION_UNITS[match[2] ?? "s"]);
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
