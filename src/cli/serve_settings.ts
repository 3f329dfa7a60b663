/** `interop serve`'s flags read into settings, each checked, before anything opens: a bad one is refused at once. */
import { isIP } from "node:net";
import { blockedPort } from "../client/blocked_ports.ts";
import { isUnmarkedLoopback } from "../http/origin_check.ts";
import { MAX_MESSAGE_BYTES, parseAgentName } from "../message.ts";
import { defaultDataDir } from "../paths.ts";
import { checkDatabaseUrl, parseByteSize, parseCount, parseDuration, parsePerAgent, usageError } from "./args.ts";
import type { ServeValues } from "./serve.ts";

/** The smallest --max-body-bytes taken. */
const MIN_BODY_BYTES = 1024;

/** Reads and checks every setting; throws the usage error of the first bad one. */
export function readServeSettings(values: ServeValues, env: Record<string, string | undefined>) {
  const durability = values.durability;
  if (durability !== "strict" && durability !== "relaxed") {
    throw usageError("serve", `Invalid --durability: ${JSON.stringify(durability)}; use strict or relaxed`);
  }
  const port = parseCount("serve", "--port", values.port, 0, 65535);
  // A broker listening where fetch never connects would start fine and answer no client.
  const unreachable = blockedPort(port);
  if (unreachable !== undefined) throw usageError("serve", `Invalid --port: ${unreachable}`);
  const dataDir = values["data-dir"] ?? defaultDataDir(env);
  // $INTEROP_DATABASE_URL (as $INTEROP_DATA_DIR) arrives as a flag, placed between the config file's and the command line's.
  const databaseUrl = values["database-url"];
  if (databaseUrl !== undefined) checkDatabaseUrl("serve", "--database-url", databaseUrl);
  const agents = values.agents.split(",").filter((name) => name !== "").map((name) => parseAgentName(name, "--agents"));
  const maxBodyBytes = parseByteSize("serve", "--max-body-bytes", values["max-body-bytes"]);
  // Below it every send would get 413: a message's JSON with its sender, recipient and text takes a few hundred bytes.
  if (maxBodyBytes < MIN_BODY_BYTES) throw usageError("serve", "Invalid --max-body-bytes: at least 1KiB (below it nearly every message gets 413)");
  if (maxBodyBytes > MAX_MESSAGE_BYTES) {
    throw usageError("serve", `Invalid --max-body-bytes: at most 64MiB (a larger message could not be encoded to deliver it)`);
  }
  const maxPending = parsePerAgent(
    "serve",
    "--max-pending",
    values["max-pending"],
    (text) => parseCount("serve", "--max-pending", text, 1, Number.MAX_SAFE_INTEGER),
  );
  const secondStream = values["second-stream"];
  if (secondStream !== "replace" && secondStream !== "refuse") {
    throw usageError("serve", `Invalid --second-stream: ${JSON.stringify(secondStream)}; use replace or refuse`);
  }
  const limits = {
    maxConnections: parseCount("serve", "--max-connections", values["max-connections"], 1, 1_000_000),
    maxHeaderBytes: parseByteSize("serve", "--max-header-bytes", values["max-header-bytes"]),
    maxUrlBytes: parseByteSize("serve", "--max-url-bytes", values["max-url-bytes"]),
  };
  const allowedHosts = values["allowed-hosts"] === undefined ? [] : parseAllowedHosts(values["allowed-hosts"]);
  const requestTimeoutMs = parseDuration("serve", "--request-timeout", values["request-timeout"]);
  if (requestTimeoutMs < 100) throw usageError("serve", "Invalid --request-timeout: use at least 100ms");
  const writeTimeoutMs = parseDuration("serve", "--write-timeout", values["write-timeout"]);
  const storeTimeoutMs = parseDuration("serve", "--store-timeout", values["store-timeout"], { min: 100, max: 3_600_000 });
  const retentionMs = parseDuration("serve", "--retention", values.retention);
  const heartbeatMs = parseDuration("serve", "--heartbeat", values.heartbeat, { min: 100 });
  const a2aWaitMs = parseDuration("serve", "--a2a-wait", values["a2a-wait"], { max: 3_600_000 });
  const originAgentFlag = values["a2a-origin-agent"];
  const a2aOriginAgent = originAgentFlag === undefined
    ? undefined
    : parseAgentName(originAgentFlag, "--a2a-origin-agent");
  const publicUrl = values["public-url"] === undefined ? undefined : parsePublicUrl(values["public-url"]);
  const logFormat = values["log-format"];
  if (logFormat !== "text" && logFormat !== "json") {
    throw usageError("serve", `Invalid --log-format: ${JSON.stringify(logFormat)}; use text or json`);
  }
  const shareFlag = values["max-requests-per-agent"];
  return {
    durability,
    port,
    dataDir,
    databaseUrl,
    agents,
    maxBodyBytes,
    maxPending,
    secondStream,
    limits,
    allowedHosts,
    requestTimeoutMs,
    writeTimeoutMs,
    storeTimeoutMs,
    retentionMs,
    heartbeatMs,
    a2aWaitMs,
    a2aOriginAgent,
    publicUrl,
    logFormat,
    /** Undefined: a share of --max-connections once that is fitted to the open-file limit (`defaultAgentShare`). */
    maxRequestsPerAgent: shareFlag === undefined ? undefined : parseCount("serve", "--max-requests-per-agent", shareFlag, 1, 1_000_000),
    pendingTtlMs: parsePerAgent("serve", "--pending-ttl", values["pending-ttl"], (text) => parseDuration("serve", "--pending-ttl", text)),
    maxHops: parseCount("serve", "--max-hops", values["max-hops"], 1, 1000),
    rateLimit: parseCount("serve", "--rate-limit", values["rate-limit"], 0, 1_000_000),
    maxAgents: parseCount("serve", "--max-agents", values["max-agents"], 1, 1_000_000),
    resumeWindowMs: parseDuration("serve", "--resume-window", values["resume-window"]),
  } as const;
}

/** Reads `--public-url`: an http(s) URL without query, fragment or credentials, given back without its trailing slash. */
function parsePublicUrl(value: string): string {
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    // Said below.
  }
  // An empty `?` or `#` leaves search and hash empty, but stays in the href.
  if (url === undefined || !/^https?:$/.test(url.protocol) || /[?#]/.test(url.href) || url.username !== "" || url.password !== "") {
    throw usageError(
      "serve",
      `Invalid --public-url ${JSON.stringify(value)}: give the http:// or https:// URL clients reach the broker by, without query or credentials, e.g. --public-url https://interop.example.com`,
    );
  }
  return url.href.replace(/\/+$/, "");
}

/** Reads `--allowed-hosts H1,H2`: host names (or addresses) without scheme or port, in lower case. */
function parseAllowedHosts(value: string): string[] {
  const names = value.split(",").map((name) => name.trim().toLowerCase());
  for (const name of names) {
    if (!/^[\w-]+(\.[\w-]+)*$/.test(name) && isIP(name) === 0) {
      throw usageError(
        "serve",
        `Invalid --allowed-hosts entry ${JSON.stringify(name)}: give host names without scheme or port, comma-separated, ` +
          `e.g. --allowed-hosts interop.example.com,broker.lan`,
      );
    }
    if (isIP(name) !== 0 && isUnmarkedLoopback(name)) {
      throw usageError(
        "serve",
        `Invalid --allowed-hosts entry ${JSON.stringify(name)}: the broker refuses this address as a Host whatever is listed ` +
          `(browsers let any web page's requests to it through unmarked); clients name it by 127.0.0.1, [::1] or the machine's own address`,
      );
    }
  }
  return names;
}
