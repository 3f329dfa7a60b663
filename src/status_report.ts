/** The shape of `GET /status`, shared by the broker that builds it and the clients that read it. */

/** The broker's clock when it made `report`, to the second: its times (`last_seen`) are its, and a client's may be skewed. */
export function reportClock(report: Pick<StatusReport, "started_at" | "uptime_seconds">): number {
  return Date.parse(report.started_at) + report.uptime_seconds * 1000;
}

/**
 * Whether the report shows a stream open for `agent`: on the answering broker, or on another live broker of a shared
 * store. An entry naming this broker (which said none above) or a dead one is stale (its close was never written).
 */
export function streamOpen(report: StatusReport, agent: string): boolean {
  // hasOwn: an agent named "constructor" is not one.
  if (!Object.hasOwn(report.agents, agent)) return false;
  const line = report.agents[agent];
  if (line.streams > 0) return true;
  const holder = report.brokers?.find((broker) => broker.id === line.stream_broker);
  return holder !== undefined && !holder.self && holder.alive;
}

/** One agent's line in the status report. */
export interface AgentStatus {
  online: boolean;
  /** Open SSE streams for this agent (0 or 1: a new stream replaces the old). */
  streams: number;
  /** Requests waiting on /wait or /ask for this agent. */
  waiting: number;
  pending: number;
  delivered_id: number;
  /** ISO 8601, or null if the agent never made a request. */
  last_seen: string | null;
  /** Messages a push delivery gave up on; see GET /dead-letters?agent=NAME. */
  dead_letters: number;
  /** Undelivered messages removed after waiting longer than serve --pending-ttl. */
  expired: number;
  /** Messages written to a stream again since the broker started: a resume from before them (at least once). */
  redelivered: number;
  /** Brokers sharing a database: the id of the one holding the agent's stream (see `brokers`), or null. */
  stream_broker?: string | null;
}

/** A broker on the database this one shares with others, as its registry row said a moment ago. */
export interface BrokerStatus {
  id: string;
  pid: number;
  host: string;
  /** HOST:PORT, or null while it starts. */
  listening: string | null;
  version: string;
  started_at: string;
  heartbeat_at: string;
  /** Stopped cleanly, or silent for three heartbeats (killed, cut off): gone. */
  alive: boolean;
  /** This broker. */
  self: boolean;
}

/** Where the broker keeps its messages, and whether it can reach them now. */
export interface StoreStatus {
  kind: "sqlite" | "postgresql";
  /** The database file, or the PostgreSQL URL without its password. */
  location: string;
  /**
   * False while a PostgreSQL server cannot be reached (requests that need it get 503 storage_unavailable), or while a
   * SQLite file's writes fail (a full disk: 507 storage_full; an I/O error: 503 storage_failed) until one succeeds.
   */
  available: boolean;
  /** Why it is unavailable. */
  error?: string;
  /**
   * PostgreSQL: how long the broker's oldest store call in flight has waited, in whole seconds (0: none, or under a
   * second). One waiting past `--store-timeout` that the server is not working on is given up, and the store is
   * unavailable until the server answers.
   */
  oldest_call_seconds?: number;
}

export interface StatusReport {
  service: "interop";
  version: string;
  /** The commit and date its binary was built from, or "source" (see src/version.ts); absent from older brokers. */
  build?: string;
  pid: number;
  uptime_seconds: number;
  started_at: string;
  data_dir: string;
  store: StoreStatus;
  runtime: string;
  agents: Record<string, AgentStatus>;
  /** The old bridge's keys: pending count per agent. */
  queues: Record<string, number>;
  /** The old bridge's keys: whether the agent has a stream open. */
  subscribers: Record<string, boolean>;
  streams: number;
  last_id: number;
  /** The identity of the store the ids come from (brokers on one database share it); see `Interop-Store`. */
  store_id: string;
  /** Only on a database several brokers share: every broker registered on it, alive or not. */
  brokers?: BrokerStatus[];
}
