/** One open SSE stream for one agent: replays what it missed from the store, then follows live messages. */
import { isStorageUnavailable } from "../errors.ts";
import type { AgentName, Envelope } from "../message.ts";
import type { StreamSink } from "../runtime/types.ts";
import { readsOn } from "../store/store.ts";
import type { StreamEnd, StreamFormat } from "./stream_format.ts";

/** Past this many bytes waiting in the runtime's buffer, stop writing and catch up from the store later. */
const HIGH_WATER_BYTES = 1024 * 1024;

export interface StreamSessionDeps {
  /** This stream, among all of the agent's on every broker. */
  id: string;
  /**
   * The store's read, bounded by what it holds too (`maxChars` of payload, one message at least): a page cut short
   * (`readsOn`) is read on from.
   */
  readAfter(agent: AgentName, afterId: number, limit: number, maxChars: number): Promise<Envelope[]>;
  /** Messages read from the store per page while catching up. */
  pageSize: number;
  /**
   * On a store other brokers share: takes the messages about to be written (compare-and-set on the inbox); false
   * when another reader moved first (the page is read again) or a newer stream took over (this one is closed).
   */
  claim?(envelopes: Envelope[]): Promise<boolean>;
  /** Whether a live message was already taken by another reader (a poll or a wait). */
  isDelivered(envelope: Envelope): boolean;
  /**
   * Whether a stored message is another reader's: taken out of order by a wait, or taken by a poll or a wait since
   * the stream opened (a read of the store made before that take committed still has it). Replays skip it.
   */
  isTaken(envelope: Envelope): boolean;
  /** Called after messages were written to the stream. */
  delivered(agent: AgentName, envelopes: Envelope[]): void;
  /** Called once when the stream ends, whoever ended it. */
  ended(session: StreamSession): void;
  format: StreamFormat;
  /** A client that reads nothing for this long while data waits for it is cut off (it resumes by its last id). */
  writeTimeoutMs: number;
}

/**
 * The store is the stream's buffer: a session that falls behind (client slow, or resuming) stops taking
 * live messages and reads them back from the store in order, so memory per stream stays bounded.
 */
export class StreamSession {
  readonly agent: AgentName;
  readonly id: string;
  #sink: StreamSink;
  #deps: StreamSessionDeps;
  #lastSent: number;
  #live = false;
  /** A catch-up runs: what is committed meanwhile is counted, and read by it before the stream goes live. */
  #catchingUp = false;
  #offersWhileCatchingUp = 0;

  constructor(agent: AgentName, startAfter: number, sink: StreamSink, deps: StreamSessionDeps) {
    this.agent = agent;
    this.id = deps.id;
    this.#lastSent = startAfter;
    this.#sink = sink;
    this.#deps = deps;
    sink.closed.addEventListener("abort", () => deps.ended(this), { once: true });
  }

  get closed(): boolean {
    return this.#sink.closed.aborted;
  }

  /** Sends the preamble at once (so clients see the stream open) and starts replaying. */
  start(): void {
    this.#sink.write(this.#deps.format.opening(this.agent));
    void this.#catchUp();
  }

  /** Messages just committed for this agent, in id order (one commit's worth: written at once). */
  offer(envelopes: Envelope[]): void {
    if (this.closed) return;
    if (!this.#live) return this.#behind();
    if (this.#write(this.#fresh(envelopes)) > HIGH_WATER_BYTES) void this.#catchUp();
  }

  /**
   * The offered messages not yet sent here nor taken by another reader: the array itself when that is all of them
   * (a live stream's usual case), so a delivery allocates no copy and no closure (this runs per stream per commit).
   */
  #fresh(envelopes: Envelope[]): Envelope[] {
    for (const envelope of envelopes) {
      if (!this.#isFresh(envelope)) return envelopes.filter((candidate) => this.#isFresh(candidate));
    }
    return envelopes;
  }

  #isFresh(envelope: Envelope): boolean {
    return envelope.id > this.#lastSent && !this.#deps.isDelivered(envelope);
  }

  /** Something was committed for this agent that was not offered (another broker wrote it): read the store. */
  wake(): void {
    if (this.closed) return;
    if (!this.#live) return this.#behind();
    void this.#catchUp();
  }

  /** Something was committed while the stream is not live: the running catch-up reads it, else one starts. */
  #behind(): void {
    if (this.#catchingUp) this.#offersWhileCatchingUp++;
    else void this.#catchUp();
  }

  heartbeat(): void {
    if (!this.closed) this.#sink.write(this.#deps.format.keepalive(this.agent));
  }

  /** Ends the stream, telling the client why when there is a reason. */
  close(end?: StreamEnd): void {
    if (this.closed) return;
    if (end) this.#sink.write(this.#deps.format.ending(this.agent, end));
    this.#sink.close();
  }

  async #catchUp(): Promise<void> {
    this.#live = false;
    this.#catchingUp = true;
    try {
      while (!this.closed) {
        if (!await this.#drainedInTime()) {
          this.#sink.destroy();
          return;
        }
        this.#offersWhileCatchingUp = 0;
        // A page is written whole: bounded as the buffer is, a client that reads nothing holds a MiB or so (and one
        // message) of the broker's memory, not a page of 16 MiB (red team 54: 40 such streams took 1.8 GB, and the
        // broker answered nothing for 10-15 s while it encoded them).
        const page = await this.#deps.readAfter(this.agent, this.#lastSent, this.#deps.pageSize, HIGH_WATER_BYTES);
        if (this.closed) return;
        const fresh = page.filter((envelope) => envelope.id > this.#lastSent && !this.#deps.isTaken(envelope));
        if (fresh.length > 0 && this.#deps.claim !== undefined && !(await this.#deps.claim(fresh))) continue;
        if (this.closed) return;
        const buffered = this.#write(fresh);
        if (!readsOn(page, this.#deps.pageSize) && this.#offersWhileCatchingUp === 0 && buffered <= HIGH_WATER_BYTES) {
          this.#live = true;
          return;
        }
      }
    } catch (error) {
      // The store cannot be reached (PostgreSQL down): the stream stays open, behind; the first wake-up after the
      // outage (a commit, or the idle re-read of a shared store) reads on from its last id.
      if (isStorageUnavailable(error)) return;
      // The store failed otherwise: end the stream; the client resumes from its last id.
      this.close({ event: "error", message: "storage failed while replaying; reconnect to resume" });
    } finally {
      this.#catchingUp = false;
    }
  }

  /** Waits for the runtime's buffer to empty; false if the write deadline passed first. */
  async #drainedInTime(): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), this.#deps.writeTimeoutMs)));
    try {
      return await Promise.race([this.#sink.drained().then(() => true), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Writes messages as SSE events; returns the bytes now buffered. */
  #write(envelopes: Envelope[]): number {
    if (envelopes.length === 0) return 0;
    let frames = "";
    for (const envelope of envelopes) frames += this.#deps.format.message(envelope);
    const buffered = this.#sink.write(frames);
    this.#lastSent = envelopes[envelopes.length - 1].id;
    this.#deps.delivered(this.agent, envelopes);
    return buffered;
  }
}
