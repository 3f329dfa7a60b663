/** `interop serve`: the broker. */
import { Authenticator } from "../auth/authenticator.ts";
import { agentAdmission } from "../broker/agent_admission.ts";
import { Broker } from "../broker/broker.ts";
import { InteropError } from "../errors.ts";
import { defaultAgentShare } from "../http/agent_shares.ts";
import { DEFAULT_REQUEST_LIMITS } from "../http/request_limits.ts";
import { BrokerMetrics } from "../metrics/broker_metrics.ts";
import { type AgentName, DEFAULT_MAX_BODY_BYTES } from "../message.ts";
import { runtimeDescription } from "../runtime/serve.ts";
import type { HttpServer } from "../runtime/types.ts";
import { PostgresStore } from "../store/postgres.ts";
import { processMark } from "../process_runs.ts";
import { VERSION } from "../version.ts";
import { parseFlags } from "./args.ts";
import { makeDataDir, removeOwner, warnIfDataDirOpen, writeOwner } from "./data_dir.ts";
import type { Io } from "./io.ts";
import { createLogger, type Logger } from "./logger.ts";
import { fitToOpenFiles } from "./open_files.ts";
import { isEveryAddress, reachingHost } from "./bind_host.ts";
import { describePortHolder, refuseUnlistenable } from "./port_holder.ts";
import { layerServeArgs } from "./serve_config.ts";
import { serveBroker } from "./serve_http.ts";
import { readServeSettings } from "./serve_settings.ts";
import { openMessageStore, openTokens } from "./serve_storage.ts";

export const HELP = `interop serve — run the broker

Usage: interop serve [options]

Starts the broker on 127.0.0.1:18900. It refuses to start when the port is held (saying
whether by another interop broker or by some other program) or when another broker uses
the data dir: there is never a second broker with its own queues.

Options:
  --port N              port to listen on (default 18900; 0 picks a free one)
  --host ADDR           address to bind (default 127.0.0.1)
  --data-dir DIR        where messages are stored (default $INTEROP_DATA_DIR,
                        else $XDG_STATE_HOME/interop, else ~/.local/state/interop); with
                        --database-url the messages and tokens are in the database
  --database-url URL    keep messages in PostgreSQL instead: postgres://USER@HOST:PORT/DB
                        (default $INTEROP_DATABASE_URL); several brokers may share one
  --agents A,B          agents whose inboxes exist from the start (default hermes,openclaw)
  --max-agents N        inboxes a broker without tokens creates for agents that connect to
                        read (default 1000; past it: 507). A send never creates one: to an
                        agent without an inbox it gets 404 (interop agent add NAME). With
                        tokens, an inbox is created only for --agents, agents that have a
                        token and those added
  --durability MODE     strict (default): fsync every commit, nothing acknowledged is lost
                        even on power loss; relaxed: survives a broker crash, not a machine crash.
                        With PostgreSQL, strict refuses a server with fsync or synchronous_commit off
  --max-body-bytes N    largest message accepted (default 1MiB, at least 1KiB, at most 64MiB;
                        e.g. 4096, 512KiB)
  --max-pending N[,AGENT=N...]
                        undelivered messages per inbox before publishes to it get 507
                        (default 100000); e.g. 100000,openclaw=500 caps openclaw lower
  --retention DUR       how long delivered messages stay for replay (default 24h)
  --pending-ttl DUR[,AGENT=DUR...]
                        how long an undelivered message may wait before it expires (default
                        0: until delivered); expiries are logged and counted in status;
                        e.g. 0,cron=1h expires only cron's messages
  --heartbeat DUR       SSE keepalive comment interval (default 15s)
  --write-timeout DUR   a stream whose client reads nothing for DUR while data waits is
                        cut off; it resumes from its last id (default 60s)
  --store-timeout DUR   with --database-url: a store call (a read, a write transaction) that
                        gets no answer within DUR, and that PostgreSQL is not working on (a
                        long sweep or a lock wait runs on), is given up: its connections are
                        cut, it answers 503 and /status says the store is unavailable until
                        PostgreSQL answers again (default 30s; 100ms to 1h)
  --resume-window DUR   a stream that reconnects without an id (ntfy without since=, an
                        EventSource without Last-Event-ID) gets again what its previous
                        connection was sent in the DUR before it ended, which a dead link may
                        have swallowed (default 3m, longer than Hermes's 90 s read timeout
                        plus its 60 s backoff; 0: only what is pending)
  --rate-limit N        messages per second one sender may publish, bursts up to twice
                        that (default 1000; 0 turns it off); past it: 429 and Retry-After
  --a2a-wait DUR        longest a blocking A2A SendMessage (or a task stream) waits for the
                        reply before it answers with the task as it stands (default 5m;
                        at most 1h)
  --a2a-origin-agent NAME
                        also serve NAME's A2A card at the origin (/.well-known/agent-card.json)
                        for clients that look only there (Hermes's strict A2A client, peer URL
                        http://HOST:PORT/a2a/NAME): strict v1.0, one JSON-RPC interface, no
                        streaming, text/plain. Public as every card; sending still needs a
                        token. NAME without an inbox or token: a warning at start
  --public-url URL      the URL clients reach the broker by, which the A2A cards advertise
                        (behind a TLS proxy: https://interop.example.com); default: the
                        request's Host, over http
  --max-hops N          deepest reply chain accepted (default 10): stops agents that
                        auto-reply to each other from looping forever
  --second-stream MODE  a second stream for an agent that has one: replace (default; the old
                        one gets event: replaced) or refuse (409)
  --max-connections N   requests in progress at once, open streams included (default 4096);
                        past it: 503 and Retry-After, except GET /status and /metrics, which
                        have 8 places of their own. Connections waiting for a request or still
                        sending one are capped at N too: past it the oldest is closed.
                        Lowered at start to fit the open-file limit (ulimit -n), with a warning
  --max-requests-per-agent N
                        requests one agent (its token's; without tokens the agent a request
                        names) may have in progress, waits and streams included (default: a
                        quarter of --max-connections); past it: 429 too_many_requests
  --request-timeout DUR a request's head and body must arrive within DUR of its first byte,
                        or it gets 408 and its connection is closed (default 30s); answers,
                        streams and waits are not limited by it
  --max-header-bytes N  largest request header section (default 16KiB); past it: 431
  --max-url-bytes N     longest request path and query (default 8KiB); past it: 414
  --allowed-hosts H1,H2 names the broker is reached by besides IP addresses, localhost and
                        --host (a reverse proxy's public name, a LAN name): a request
                        naming another Host gets 403, as does one from a web page of
                        another origin (DNS rebinding, cross-site forms)
  --insecure            serve a non-loopback --host without tokens (anyone who can reach
                        the port can then read and send every message)
  --verbose             also log each request (method, path, agent, status, time) and when
                        each stream ends; never a token or a message body
  --log-format FORMAT   text (default) or json: one JSON object per line for log shippers,
                        with time, level, msg, command and the event's fields (a request's
                        method, path, agent, status, ms; the start's url, pid, data_dir …)
  --config FILE         read settings from a YAML (or JSON) file keyed by these flags' long
                        names, e.g. "port: 18901", "agents: [hermes, openclaw]", "verbose: true"
                        (default $INTEROP_CONFIG). A flag wins over the environment
                        ($INTEROP_PORT, $INTEROP_HOST, $INTEROP_DATA_DIR, $INTEROP_DATABASE_URL),
                        which wins over the file
  -h, --help            show this help

Stops cleanly on SIGINT/SIGTERM: streams end, requests already started get a second to
finish (a chunked body still arriving too), queued commits finish, the database closes;
a request arriving meanwhile is refused 503 storage_unavailable, to retry.
Tokens: once 'interop token create' made one for the data dir (with --database-url: for
the database, interop token create --database-url URL), every request needs
Authorization: Bearer TOKEN (or ?token=), even after the last one is revoked, and each
token acts only as its own agent.
Without tokens the broker must stay on loopback.

PostgreSQL stopped while the broker runs, or not answering a call it is not working on for
--store-timeout: requests that need it get 503 storage_unavailable (with Retry-After) and
/status says so; once it answers again the broker serves again by itself.

Exit codes: 0 stopped cleanly, 2 bad usage or an insecure --host, 6 port or data dir in
use, 3 the --database-url server cannot be reached as it starts (worth a retry: a unit
restarts it), 1 other failure (a data dir it cannot create or write among them).
`;

export const OPTIONS = {
  port: { type: "string", default: "18900" },
  host: { type: "string", default: "127.0.0.1" },
  "data-dir": { type: "string" },
  "database-url": { type: "string" },
  agents: { type: "string", default: "hermes,openclaw" },
  "max-agents": { type: "string", default: "1000" },
  durability: { type: "string", default: "strict" },
  "max-body-bytes": { type: "string", default: String(DEFAULT_MAX_BODY_BYTES) },
  "max-pending": { type: "string", default: "100000" },
  retention: { type: "string", default: "24h" },
  "pending-ttl": { type: "string", default: "0" },
  heartbeat: { type: "string", default: "15s" },
  "write-timeout": { type: "string", default: "60s" },
  "store-timeout": { type: "string", default: "30s" },
  "resume-window": { type: "string", default: "3m" },
  "a2a-wait": { type: "string", default: "5m" },
  "a2a-origin-agent": { type: "string" },
  "public-url": { type: "string" },
  "max-hops": { type: "string", default: "10" },
  "rate-limit": { type: "string", default: "1000" },
  "second-stream": { type: "string", default: "replace" },
  "max-connections": { type: "string", default: String(DEFAULT_REQUEST_LIMITS.maxConnections) },
  "max-requests-per-agent": { type: "string" },
  "max-header-bytes": { type: "string", default: String(DEFAULT_REQUEST_LIMITS.maxHeaderBytes) },
  "max-url-bytes": { type: "string", default: String(DEFAULT_REQUEST_LIMITS.maxUrlBytes) },
  "allowed-hosts": { type: "string" },
  "request-timeout": { type: "string", default: "30s" },
  insecure: { type: "boolean", default: false },
  verbose: { type: "boolean", default: false },
  "log-format": { type: "string", default: "text" },
  config: { type: "string" },
  help: { type: "boolean", short: "h", default: false },
} as const;

/** The parsed flags, which serve_settings.ts reads. */
export type ServeValues = ReturnType<typeof parseFlags<typeof OPTIONS>>["values"];

export async function run(args: string[], io: Io): Promise<number> {
  const layered = layerServeArgs(args, io.env, OPTIONS);
  try {
    return await serve(layered.args, io);
  } catch (error) {
    throw layered.explain(error);
  }
}

async function serve(args: string[], io: Io): Promise<number> {
  const { values } = parseFlags("serve", args, OPTIONS);
  if (values.help) {
    io.stdout(HELP);
    return 0;
  }
  const settings = readServeSettings(values, io.env);
  const { durability, port, dataDir, databaseUrl, limits, maxBodyBytes, a2aOriginAgent, storeTimeoutMs } = settings;
  const log = createLogger(io, "serve", values.verbose, settings.logFormat);
  if (settings.retentionMs < settings.resumeWindowMs) {
    // Allowed (tests and short-lived brokers keep little), but the window's promise to id-less reconnects is then void.
    log.warn(
      `--retention ${values.retention} is shorter than --resume-window ${values["resume-window"]}: a stream that reconnects without an ` +
        `id gets again only what retention has not yet removed of what its previous connection was sent (shorten --resume-window to match)`,
    );
  }
  limits.maxConnections = fitToOpenFiles(limits.maxConnections, log.warn);
  const maxRequestsPerAgent = settings.maxRequestsPerAgent ?? defaultAgentShare(limits.maxConnections);
  await refuseUnlistenable(values.host, port);
  makeDataDir(dataDir);
  const store = await openMessageStore(dataDir, durability, databaseUrl, log.warn, storeTimeoutMs);
  let auth: Authenticator;
  try {
    auth = await Authenticator.open(await openTokens(dataDir, databaseUrl));
    if (!isLoopback(values.host) && !auth.enabled) {
      if (!values.insecure) {
        throw new InteropError(
          "insecure_bind",
          `Refusing to serve on ${values.host} without tokens: anyone who can reach it could read and send every message; ` +
            `create a token per agent first (interop token create --agent NAME ${
              databaseUrl === undefined ? `--data-dir ${dataDir}` : "--database-url URL"
            }), or pass --insecure`,
        );
      }
      log.warn(`INSECURE: serving on ${values.host} without tokens; anyone who can reach this port can read and send every message`);
    } else if (settings.allowedHosts.length > 0 && !auth.enabled) {
      // A name is how a proxy or a LAN reaches the broker, and over plain http a browser marks no request to it with
      // where it comes from: a page elsewhere could take messages with an <img> (red team, session 52).
      log.warn(
        `serving --allowed-hosts ${settings.allowedHosts.join(",")} without tokens: whoever reaches the broker by those names, ` +
          `and any web page the operator's browser opens over plain http, can read and send messages; create a token per agent ` +
          `(interop token create --agent NAME)`,
      );
    }
  } catch (error) {
    await store.close();
    throw error;
  }
  if (auth.enabled && store.kind === "sqlite") warnIfDataDirOpen(dataDir, log.warn);

  const broker = await Broker.open({
    store,
    dataDir,
    agents: settings.agents,
    maxPending: settings.maxPending,
    retentionMs: settings.retentionMs,
    pendingTtlMs: settings.pendingTtlMs,
    onExpired: (agent, count) => log.warn(`expired ${count} undelivered messages for ${agent} (older than --pending-ttl)`, { agent, count }),
    heartbeatMs: settings.heartbeatMs,
    writeTimeoutMs: settings.writeTimeoutMs,
    maxHops: settings.maxHops,
    rateLimit: settings.rateLimit,
    secondStream: settings.secondStream,
    admitAgent: agentAdmission({
      tokensOn: () => auth.enabled,
      hasToken: (agent) => auth.hasTokenFor(agent),
      maxAgents: settings.maxAgents,
    }),
    resumeWindowMs: settings.resumeWindowMs,
    maxMessageBytes: maxBodyBytes,
  });
  const metrics = new BrokerMetrics(() => broker.status(), store.kind === "sqlite" ? [store.location, `${store.location}-wal`] : [], {
    hasInbox: (agent) => broker.hasInbox(agent),
  });
  broker.observe(metrics);
  let server: HttpServer;
  try {
    if (a2aOriginAgent !== undefined) warnUnknownAgent(broker, auth, a2aOriginAgent, log);
    server = await serveBroker(broker, {
      auth,
      metrics,
      log,
      host: values.host,
      port,
      allowedHosts: settings.allowedHosts,
      limits,
      maxRequestsPerAgent,
      requestTimeoutMs: settings.requestTimeoutMs,
      writeTimeoutMs: settings.writeTimeoutMs,
      maxBodyBytes,
      a2aWaitMs: settings.a2aWaitMs,
      a2aOriginAgent,
      publicUrl: settings.publicUrl,
      verbose: values.verbose,
    });
  } catch (error) {
    await broker.close();
    await auth.close();
    if (error instanceof InteropError && error.code === "address_in_use") {
      throw new InteropError("address_in_use", await describePortHolder(values.host, port), { cause: error });
    }
    throw error;
  }
  // The database names its broker itself (PostgresStore.announce); a data dir can be shared by brokers on databases.
  const ownsDataDir = !(store instanceof PostgresStore);
  if (ownsDataDir) writeOwner(dataDir, { ...processMark(), host: server.hostname, port: server.port, version: VERSION });
  // Only names this broker in the cluster view: an outage right now must not stop it.
  if (store instanceof PostgresStore) await store.announce(`${server.hostname}:${server.port}`).catch(() => {});
  const listening = {
    version: VERSION,
    // A URL this machine's clients can use: the broker refuses 0.0.0.0 and :: as a Host.
    url: `http://${reachingHost(server.hostname)}:${server.port}`,
    pid: process.pid,
    ...(store instanceof PostgresStore ? { database: store.location } : {}),
    data_dir: dataDir,
    durability,
    runtime: runtimeDescription(),
  };
  const everyAddress = isEveryAddress(server.hostname) ? ` and every address of this machine (--host ${server.hostname})` : "";
  log.info(
    `interop ${VERSION} listening on ${listening.url}${everyAddress} (pid ${process.pid}, ` +
      `${store instanceof PostgresStore ? `database ${store.location}, ` : ""}data dir ${dataDir}, durability ${durability}, ` +
      `${listening.runtime})`,
    listening,
  );

  await new Promise((resolve) => io.shutdown.addEventListener("abort", resolve, { once: true }));
  log.info("stopping: closing streams and the database");
  // The server stops taking requests and gives those in progress a second (src/runtime/node_server.ts).
  await broker.close(server.close());
  await auth.close();
  if (ownsDataDir) removeOwner(dataDir, log.warn);
  log.info("stopped");
  return 0;
}

/** Whether binding `host` keeps the broker on this machine. */
function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * `--a2a-origin-agent` names an agent that no message can be sent to (no inbox, and no token that makes one): a
 * typo, or an agent removed since the option was written. Said at start, not refused: a broker that will not start
 * again after an `interop agent remove` is worse than a card whose sends answer `unknown_agent`.
 */
function warnUnknownAgent(broker: Broker, auth: Authenticator, agent: AgentName, log: Logger): void {
  if (Object.hasOwn(broker.status().agents, agent) || (auth.enabled && auth.hasTokenFor(agent))) return;
  log.warn(
    `--a2a-origin-agent ${agent} has no inbox: its origin card is served, but sends to it answer unknown_agent until it exists (interop agent add ${agent})`,
    { agent },
  );
}
