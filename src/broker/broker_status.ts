/** What `/status` says of a broker: its figures gathered from the parts that hold them, built into the report. */
import type { AgentName } from "../message.ts";
import type { StatusReport } from "../status_report.ts";
import type { ClusterView, InboxRecord, MessageStore } from "../store/store.ts";
import { buildStatus, StatusDocument, type StatusInput } from "./status.ts";

/** How long a report on a shared store waits for the cluster view to be read again (see `#lookNow`), in ms. */
const LOOK_AGAIN_MS = 2000;

/** Where the broker's figures are read, each time a report is asked for. */
export interface StatusSources {
  dataDir: string;
  store: MessageStore;
  inboxes: ReadonlyMap<AgentName, InboxRecord>;
  lastId(): number;
  streaming(agent: AgentName): boolean;
  /** Requests waiting on /wait or /ask for the agent (leased waits are counted here, by `countWaiting`). */
  waiting(agent: AgentName): number;
  redelivered(agent: AgentName): number;
  /** On a store several brokers share: the brokers and their streams, as last read. */
  cluster(): ClusterView | undefined;
  /** On a store several brokers share: reads the cluster view again (requests share one read). */
  lookAgain?(): Promise<void>;
  now(): number;
}

export class BrokerStatus {
  #sources: StatusSources;
  #startedAt: number;
  /** Leased waits (`/wait?peek=1`) in progress per agent: counted as waiting, as /wait's are. */
  #leasedWaits = new Map<AgentName, number>();
  #document = new StatusDocument();

  constructor(sources: StatusSources) {
    this.#sources = sources;
    this.#startedAt = sources.now();
  }

  /** Counts a leased wait for `agent` in `waiting` until the returned function is called. */
  countWaiting(agent: AgentName): () => void {
    this.#leasedWaits.set(agent, (this.#leasedWaits.get(agent) ?? 0) + 1);
    return () => {
      const left = this.#leasedWaits.get(agent)! - 1;
      if (left === 0) this.#leasedWaits.delete(agent);
      else this.#leasedWaits.set(agent, left);
    };
  }

  /** The report, of the cluster view as last read on a shared store (for samples: metrics, a start-up check). */
  report(): StatusReport {
    return buildStatus(this.#input());
  }

  /** The report a client asked for: on a shared store, of the cluster view as it is now (see `#lookNow`). */
  async currentReport(): Promise<StatusReport> {
    await this.#lookNow();
    return this.report();
  }

  /** The report as UTF-8 JSON, rebuilt only when it changed; on a shared store, as it is now (see `#lookNow`). */
  async currentJson(): Promise<Uint8Array<ArrayBuffer>> {
    await this.#lookNow();
    return this.#document.bytes(this.#input());
  }

  /**
   * On a shared store, reads the cluster view again: an agent another broker created or removed since the last read
   * (once a second) is listed as it is, not as it was. During an outage, if the read fails, or if it takes longer than
   * LOOK_AGAIN_MS (a server that stopped answering, not yet seen as an outage), the report is of the last view: a
   * load balancer's health check gets an answer, and the store's state in it.
   */
  async #lookNow(): Promise<void> {
    const { lookAgain, store } = this.#sources;
    if (lookAgain === undefined || store.outage !== undefined) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      lookAgain().catch(() => {}),
      new Promise((resolve) => (timer = setTimeout(resolve, LOOK_AGAIN_MS))),
    ]);
    clearTimeout(timer);
  }

  #input(): StatusInput {
    const sources = this.#sources;
    const { store } = sources;
    const cluster = sources.cluster();
    return {
      now: sources.now(),
      startedAt: this.#startedAt,
      dataDir: sources.dataDir,
      store: {
        kind: store.kind,
        location: store.location,
        available: store.outage === undefined && store.failingWrites === undefined,
        ...(store.outage === undefined ? {} : { error: store.outage.message }),
        ...(store.failingWrites === undefined ? {} : { error: store.failingWrites }),
        ...(store.oldestCallMs === undefined ? {} : { oldest_call_seconds: Math.floor(store.oldestCallMs() / 1000) }),
      },
      lastId: sources.lastId(),
      storeId: store.id,
      inboxes: sources.inboxes,
      streaming: sources.streaming,
      waiting: (agent) => sources.waiting(agent) + (this.#leasedWaits.get(agent) ?? 0),
      redelivered: sources.redelivered,
      ...(cluster === undefined ? {} : { cluster }),
    };
  }
}
