/** The broker's metrics: Prometheus counters and histograms fed by its observer calls, and a per-second history for the dashboard. */
import { statSync } from "node:fs";
import process from "node:process";
import type { BrokerObserver } from "../broker/observers.ts";
import type { AgentName, Envelope } from "../message.ts";
import type { StatusReport } from "../status_report.ts";
import { Counter, exposition, Gauge, Histogram, type Metric } from "./registry.ts";

/** Seconds, from 0.5 ms to 10 s. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];
/**
 * The `from` of messages from senders without an inbox. Without tokens `from=` is any name a client writes, and a
 * series each would grow /metrics and the broker's memory without bound; no agent name has parentheses.
 */
export const SENDER_WITHOUT_INBOX = "(no inbox)";
/** How much history the dashboard's chart gets, in seconds. */
const HISTORY_SECONDS = 600;

/** One second of traffic: what the dashboard charts. */
export interface Second {
  /** Start of the second, ms since the epoch. */
  time: number;
  published: number;
  delivered: number;
  /** Mean publish→deliver latency of that second's deliveries, in ms (0 if none). */
  latencyMs: number;
}

export class BrokerMetrics implements BrokerObserver {
  #published = new Counter("interop_messages_published_total", "Messages stored, by sender and recipient.");
  #delivered = new Counter("interop_messages_delivered_total", "Messages handed to their agent (stream, poll or wait), by agent.");
  #redelivered = new Counter(
    "interop_messages_redelivered_total",
    "Messages written to a stream again because it resumed from before them (Last-Event-ID, or a resume without an id), by agent.",
  );
  #expired = new Counter("interop_messages_expired_total", "Undelivered messages removed by the pending TTL, by agent.");
  #deadLettered = new Counter("interop_messages_dead_lettered_total", "Messages a push receiver refused for good, by agent.");
  #commitSeconds = new Histogram("interop_publish_commit_seconds", "Time from a publish's start to its durable commit.", LATENCY_BUCKETS);
  #deliverSeconds = new Histogram("interop_publish_deliver_seconds", "Time from a message's publish to its delivery (stream write, poll or wait).", LATENCY_BUCKETS);
  #batchMessages = new Histogram("interop_commit_batch_messages", "Messages per store transaction.", BATCH_BUCKETS);
  #history: Second[] = [];
  /** The last delivered message's timestamp, and it parsed (ms). */
  #lastTimestamp = "";
  #lastCreatedAt = 0;
  #metrics: Metric[];
  #hasInbox: (agent: AgentName) => boolean;
  #now: () => number;

  /**
   * `status` reads the broker's inboxes and streams when scraped; `storeFiles` are the files whose size is reported;
   * `hasInbox` tells a sender with a series of its own from one counted under SENDER_WITHOUT_INBOX.
   */
  constructor(
    status: () => StatusReport,
    storeFiles: string[],
    options: { hasInbox?: (agent: AgentName) => boolean; now?: () => number } = {},
  ) {
    this.#hasInbox = options.hasInbox ?? (() => true);
    this.#now = options.now ?? Date.now;
    const agents = () => Object.entries(status().agents);
    this.#metrics = [
      this.#published,
      this.#delivered,
      this.#redelivered,
      this.#expired,
      this.#deadLettered,
      new Gauge("interop_open_streams", "Open streams (SSE and ntfy).", () => [[{}, status().streams]]),
      new Gauge("interop_pending_messages", "Undelivered messages, by agent.", () => agents().map(([agent, a]) => [{ agent }, a.pending])),
      // Only on a database several brokers share (no sample otherwise): the registry as this broker last read it.
      new Gauge("interop_cluster_brokers", "Brokers registered on the shared database, by whether they are alive.", () => {
        const brokers = status().brokers;
        if (brokers === undefined) return [];
        const alive = brokers.filter((broker) => broker.alive).length;
        return [[{ state: "alive" }, alive], [{ state: "gone" }, brokers.length - alive]];
      }),
      new Gauge("interop_stream_broker", "1 for the broker each agent's stream is on, across the brokers sharing a database.", () =>
        agents().flatMap(([agent, a]) => a.stream_broker == null ? [] : [[{ agent, broker: a.stream_broker }, 1]])),
      this.#commitSeconds,
      this.#deliverSeconds,
      this.#batchMessages,
      // No files (PostgreSQL): no sample, rather than a size of 0 that would look like an empty store.
      new Gauge("interop_store_bytes", "Size of the store's files on disk.", () =>
        storeFiles.length === 0 ? [] : [[{}, storeFiles.reduce((sum, file) => sum + fileSize(file), 0)]]),
      new Gauge("process_resident_memory_bytes", "Resident memory of the broker process.", () => [[{}, process.memoryUsage().rss]]),
      new Gauge("process_heap_bytes", "JavaScript heap in use.", () => [[{}, process.memoryUsage().heapUsed]]),
    ];
  }

  published(envelopes: Envelope[], commitMs: number): void {
    this.#commitSeconds.observe(commitMs / 1000);
    // A broadcast's copies share their sender: it is looked up once.
    const from = envelopes.length === 0 || this.#hasInbox(envelopes[0].from) ? undefined : SENDER_WITHOUT_INBOX;
    for (const envelope of envelopes) this.#published.inc({ from: from ?? envelope.from, to: envelope.to });
    this.#second().published += envelopes.length;
  }

  delivered(envelope: Envelope): void {
    // A broadcast's copies are delivered one after the other with the same timestamp: it is parsed once.
    if (envelope.timestamp !== this.#lastTimestamp) this.#lastCreatedAt = Date.parse(this.#lastTimestamp = envelope.timestamp);
    const now = this.#now();
    const latencyMs = Math.max(0, now - this.#lastCreatedAt);
    this.#delivered.inc({ agent: envelope.to });
    this.#deliverSeconds.observe(latencyMs / 1000);
    const second = this.#second(now);
    second.latencyMs += (latencyMs - second.latencyMs) / ++second.delivered;
  }

  redelivered(agent: AgentName, count: number): void {
    this.#redelivered.inc({ agent }, count);
  }

  expired(agent: AgentName, count: number): void {
    this.#expired.inc({ agent }, count);
  }

  deadLettered(agent: AgentName): void {
    this.#deadLettered.inc({ agent });
  }

  committed(messages: number): void {
    if (messages > 0) this.#batchMessages.observe(messages);
  }

  /** The Prometheus text exposition of every metric. */
  render(): string {
    return exposition(this.#metrics);
  }

  /** The last ten minutes, one entry per second that had traffic, oldest first. */
  history(): Second[] {
    const since = this.#now() - HISTORY_SECONDS * 1000;
    return this.#history.filter((second) => second.time >= since);
  }

  /** The history's entry for the second of `now` (read once by a caller that has it: a delivery reads it twice). */
  #second(now = this.#now()): Second {
    const time = Math.floor(now / 1000) * 1000;
    let last = this.#history.at(-1);
    if (last?.time !== time) {
      last = { time, published: 0, delivered: 0, latencyMs: 0 };
      this.#history.push(last);
      if (this.#history.length > HISTORY_SECONDS) this.#history.shift();
    }
    return last;
  }
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
