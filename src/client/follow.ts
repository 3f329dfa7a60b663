/** Follows an agent's stream for as long as asked: reconnects with backoff, resumes by Last-Event-ID, delivers in order. */
import { createParser, type EventSourceMessage } from "eventsource-parser";
import { InteropError } from "../errors.ts";
import type { AgentName } from "../message.ts";
import { sleep } from "../sleep.ts";
import { backoffDelay, type BackoffOptions, DEFAULT_BACKOFF } from "./backoff.ts";
import { type StatusReport, streamOpen } from "../status_report.ts";
import type { BrokerClient, StreamPosition } from "./broker_client.ts";

/** One message from the stream: its id and the JSON line the broker sent. */
export interface StreamedMessage {
  id: number;
  data: string;
}

export interface FollowOptions {
  client: BrokerClient;
  agent: AgentName;
  /** Resume after this id (of the store named with it); undefined starts from the broker's own cursor for the agent. */
  from: StreamPosition | undefined;
  /**
   * Hands a message on; resolves once it is safely written. Called one at a time, in order. `letGo` lets the stream
   * go while the message waits for a receiver that keeps failing: see `followOnce`.
   */
  deliver(message: StreamedMessage, letGo: () => void): Promise<void>;
  /**
   * Saves the position: after `deliver` resolved, before the first connection (where the inbox stands), or with
   * undefined when the broker disowned the saved id. The next message waits until it resolves.
   */
  delivered(position: StreamPosition | undefined): Promise<void>;
  log: { info(message: string): void; warn(message: string): void; debug(message: string): void };
  signal: AbortSignal;
  /** Reconnect when nothing (not even a heartbeat) arrived for this long; default 45 s. */
  idleTimeoutMs?: number;
  /** Throw `replaced` when another reader takes the stream, instead of waiting for it to leave (listen's old way). */
  exitIfReplaced?: boolean;
  backoff?: BackoffOptions;
}

/**
 * How often a listener whose stream another reader took asks whether it left: soon at first (a `curl` peek is
 * short), then every few seconds at most, so that a reader that stays costs the broker one /status read per 5 s.
 */
const REPLACED_BACKOFF: BackoffOptions = { initialMs: 250, maxMs: 5000 };
/** A stream that lived this long counts as healthy: the next failure starts the backoff again. */
const HEALTHY_AFTER_MS = 10_000;
/** The largest event the reader buffers; the broker's own cap on a message is far below it. */
const MAX_EVENT_BYTES = 64 * 1024 * 1024;

/**
 * Runs until `signal` aborts; throws on failures a retry cannot mend (bad agent; the agent removed by the operator;
 * replaced, with `exitIfReplaced`).
 */
export async function follow(options: FollowOptions): Promise<void> {
  let position = options.from;
  let attempt = 0;
  /**
   * The identity of the store behind the last stream that opened (undefined from a broker older than store ids), at
   * first the saved position's: the agent had its inbox there, so a removal while listen was stopped is not undone by
   * its restart.
   */
  let streamStore = options.from?.store;
  while (!options.signal.aborted) {
    const openedAt = performance.now();
    try {
      const ended = await followOnce(options, position, streamStore, {
        opened: (store) => (streamStore = store),
        advanced: (advanced) => {
          position = advanced;
          attempt = 0;
        },
      });
      if (options.signal.aborted) return;
      options.log.info(ended === "let go" ? `the receiver took what was in hand; reconnecting after ${position?.id}` : "stream ended by the broker; reconnecting");
    } catch (error) {
      if (options.signal.aborted) return;
      if (!(error instanceof InteropError)) throw error;
      const disowned = error.code === "unknown_event_id" || error.code === "event_id_expired";
      if (disowned) {
        options.log.warn(`${error.message.replace(/^Broker refused \(HTTP \d+\): /, "")}: resuming from the broker's cursor`);
        position = undefined;
        await options.delivered(undefined);
        // After the backoff like any failure, not at once: a broker that refused the cursor's own position too (one
        // did, after a pending-TTL expiry) was asked again as fast as it answered, some 200 times a second.
      }
      // The broker refused to create the inbox again (it had one on that store): said as a removal seen live is.
      if (error.code === "agent_removed") throw agentRemoved(options.agent);
      if (error.code === "replaced" && !options.exitIfReplaced) {
        // A peek (`curl /subscribe`) or a second listen took the stream. Giving the agent up would leave it with no
        // listener once that reader leaves (and a unit would not restart us), so wait for it to go, then resume by
        // our own id: what the other reader took still reaches this listener's output.
        options.log.warn(`another reader for ${options.agent} took over the stream; waiting for it to leave`);
        await untilNoStream(options, streamStore);
        attempt = 0;
        continue;
      }
      if (!disowned && !isRetryable(error)) throw error;
      if (!disowned) options.log.warn(`${error.message}`);
    }
    if (performance.now() - openedAt > HEALTHY_AFTER_MS) attempt = 0;
    const delay = backoffDelay(attempt++, options.backoff ?? DEFAULT_BACKOFF);
    options.log.debug(`reconnecting in ${delay} ms`);
    await sleep(delay, options.signal);
  }
}

/**
 * Resolves once the broker says the agent has no stream open (here, or on another broker of a shared store), or
 * answers from another store than `store` (the one the taken stream came from), or when `signal` aborts. /status is
 * what the agent's own token may read, as listen does for its first position.
 */
async function untilNoStream(options: FollowOptions, store: string | undefined): Promise<void> {
  for (let attempt = 0; !options.signal.aborted; attempt++) {
    await sleep(backoffDelay(attempt, REPLACED_BACKOFF), options.signal);
    if (options.signal.aborted) return;
    let report: StatusReport;
    try {
      report = await options.client.status(options.signal);
    } catch (error) {
      if (options.signal.aborted) return;
      if (!(error instanceof InteropError && isRetryable(error))) throw error;
      options.log.debug(`cannot ask whether the other reader left: ${error.message}`);
      continue;
    }
    // Another store (the broker restarted on a fresh data dir, or another broker took its address) knows nothing of
    // the other reader nor of a removal: resume, as after any reconnect (followOnce reads what is pending there).
    if (report.store_id !== store) return;
    // Gone from the same store's agents: removed by the operator meanwhile, or the store restored from a backup taken
    // before the agent existed. Only the broker can tell (it records removals): the resume says which store this
    // listener had the inbox on, and the broker refuses it for a removed agent (agent_removed) and creates it again
    // for a restored one. hasOwn: an agent named "constructor" is not one.
    if (!Object.hasOwn(report.agents, options.agent)) return;
    if (!streamOpen(report, options.agent)) return;
  }
}

/** The operator removed the agent: listening on would create its inbox again, so the listener stops. */
function agentRemoved(agent: AgentName): InteropError {
  return new InteropError(
    "agent_removed",
    `${agent} was removed by the operator: listen stops rather than create its inbox again; 'interop agent add ${agent}' and start listen again to go on`,
  );
}

/**
 * Whether a stream's `error` event is the agent's removal: its code says so (a broker before codes on stream
 * endings said it only in words).
 */
function isRemoval(data: string, agent: AgentName): boolean {
  try {
    const end = JSON.parse(data) as { reason?: unknown; code?: unknown };
    return end.code === "agent_removed" || end.reason === `${agent} was removed by the operator`;
  } catch {
    return false;
  }
}

function isRetryable(error: InteropError): boolean {
  return error.code === "unreachable" || error.code === "storage_failed" ||
    (error.status !== undefined && (error.status >= 500 || error.status === 408 || error.status === 429));
}

/**
 * One connection: reads events until the stream ends, fails, goes idle, or `signal` aborts. `hadInboxOn`: the store
 * of the last stream that opened, where the agent had an inbox (a subscribe creates it).
 *
 * A delivery whose receiver keeps failing lets the stream go (the deliverer calls `letGo`): what the broker writes to
 * a stream counts as delivered, so a listen stuck on a receiver that refuses (a wrong token, a gateway down) went on
 * taking messages it could not hand on: `interop status` showed nothing pending and the agent online, and once
 * `--retention` had passed they were gone for its next resume (red team 63, OpenClaw's hooks). Let go, the agent goes
 * offline and what comes meanwhile waits in its inbox, pending; the messages read already are handed on in order,
 * and the next connection resumes after the last one handed on. Resolves "let go" then, else "ended".
 */
async function followOnce(
  options: FollowOptions,
  position: StreamPosition | undefined,
  hadInboxOn: string | undefined,
  progress: { opened(store: string | undefined): void; advanced(position: StreamPosition): void },
): Promise<"ended" | "let go"> {
  const { advanced } = progress;
  const connection = new AbortController();
  const stop = () => connection.abort();
  let letGo = false;
  const release = () => {
    if (letGo || connection.signal.aborted) return;
    letGo = true;
    options.log.warn(
      `letting the stream go while the receiver fails: what comes meanwhile waits in ${options.agent}'s inbox (pending), ` +
        "and the stream is taken again once the message in hand is handed on",
    );
    stop();
  };
  options.signal.addEventListener("abort", stop, { once: true });
  const idleMs = options.idleTimeoutMs ?? 45_000;
  let idle = setTimeout(stop, idleMs);
  /** The broker this stream came from, once it answered. */
  let connected: string | undefined;
  try {
    if (position === undefined) {
      // No saved position: take the inbox's and save it before the stream opens. The broker counts what it writes
      // to a stream as delivered, so a listener that died before handling any of it would otherwise skip it.
      position = await options.client.position(options.agent);
      await options.delivered(position);
      advanced(position);
    }
    const { body, store, resumedAfter } = await options.client.openStream(options.agent, position, connection.signal, hadInboxOn);
    connected = options.client.baseUrl;
    progress.opened(store);
    // Another store's ids say nothing here (a broker on another data dir): the broker reads from the agent's cursor,
    // and the saved id is disowned as a 409 disowns it (what was marked sent by id, `listen --a2a`'s, starts over).
    // Unless the broker took the id as its own (the store was migrated there): then the saved id stands, and a
    // listener killed before it handles a message resumes by it again, not from a cursor past what it was sent.
    const otherStore = position.store !== undefined && store !== undefined && store !== position.store &&
      resumedAfter !== position.id;
    options.log.info(
      otherStore
        ? `connected to ${connected} as ${options.agent}: another store than id ${position.id}'s, reading what is pending`
        : `connected to ${connected} as ${options.agent}, resuming after ${position.id}`,
    );
    if (otherStore) await options.delivered(undefined);
    const events: EventSourceMessage[] = [];
    const parser = createParser({ onEvent: (event) => events.push(event), maxBufferSize: MAX_EVENT_BYTES });
    const decoder = new TextDecoder();
    const reader = body.getReader();
    // Deno 2.9 leaves a pending body read hanging when the fetch's signal aborts; cancelling the reader ends it.
    connection.signal.addEventListener("abort", () => void reader.cancel().catch(() => {}), { once: true });
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      clearTimeout(idle);
      parser.feed(decoder.decode(value, { stream: true }));
      for (const event of events.splice(0)) {
        if (options.signal.aborted) return "ended";
        if (event.event === undefined || event.event === "message") {
          const id = Number(event.id);
          await options.deliver({ id, data: event.data }, release);
          await options.delivered({ id, store });
          advanced({ id, store });
        } else if (event.event === "error" && isRemoval(event.data, options.agent)) {
          throw agentRemoved(options.agent);
        } else if (event.event === "replaced") {
          throw new InteropError("replaced", `Another reader for ${options.agent} took over the stream; this one stops (--exit-if-replaced)`);
        } else {
          options.log.info(`broker sent "${event.event}": ${event.data}`);
        }
      }
      idle = setTimeout(stop, idleMs);
    }
    if (letGo) return "let go";
    if (connection.signal.aborted && !options.signal.aborted) {
      throw new InteropError("unreachable", `Stream from ${connected} went quiet: no data for ${idleMs} ms`);
    }
    return "ended";
  } catch (error) {
    if (options.signal.aborted) throw error;
    if (letGo && !(error instanceof InteropError)) return "let go";
    const failure = error instanceof InteropError
      ? error
      : new InteropError(
        "unreachable",
        `Stream from ${connected ?? options.client.baseUrl} broke: ${connection.signal.aborted ? `no data for ${idleMs} ms` : (error as Error).message}`,
        { cause: error },
      );
    // Its broker died, is cut off or never answered the subscribe: the reconnect goes to the next one (several
    // --url), resuming by Last-Event-ID.
    if (failure.code === "unreachable") options.client.urls.next(connected ?? options.client.baseUrl);
    throw failure;
  } finally {
    clearTimeout(idle);
    options.signal.removeEventListener("abort", stop);
    connection.abort();
  }
}
