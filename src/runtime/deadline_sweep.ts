/**
 * Deadlines for many things on one timer. Setting or clearing one is a `Map` operation, not a timer of its own:
 * the runtimes' request paths set and clear them per request, and most are cleared long before they are due.
 */
export class DeadlineSweep<T> {
  readonly #deadlines = new Map<T, number>();
  readonly #periodMs: number;
  readonly #expire: (item: T) => void;
  /**
   * Runs only while a deadline is set: an idle broker's three sweeps woke it three times a second for nothing, a
   * wake-up costing 0.2-0.5 ms of CPU on this machine (docs/benchmark.md, session 31).
   */
  #timer: ReturnType<typeof setInterval> | undefined;
  #stopped = false;
  /** When the sweep last looked (or its timer started), to tell a stall from a period. */
  #lastLook = 0;
  /** Whether the last look was skipped as late: only one in a row is, so a loop late every time still expires. */
  #skipped = false;

  /** Looks every `periodMs` (so a deadline is met up to that late) and hands `expire` each item past its own. */
  constructor(periodMs: number, expire: (item: T) => void) {
    this.#periodMs = periodMs;
    this.#expire = expire;
  }

  /** Gives `item` a deadline `ms` from now, unless it has one. */
  start(item: T, ms: number): void {
    if (this.#deadlines.has(item)) return;
    this.#deadlines.set(item, performance.now() + ms);
    if (this.#timer === undefined && !this.#stopped) {
      this.#lastLook = performance.now();
      this.#timer = setInterval(() => this.#sweep(), this.#periodMs);
    }
  }

  #sweep(): void {
    const now = performance.now();
    // Two periods late, the process was stalled (stopped, a suspended machine, a long synchronous step), and what
    // arrived meanwhile is not read yet: a new loop turn runs timers before I/O. Expired now, a keep-alive
    // connection whose client sent a request during the stall was cut with that request unanswered (a POST its
    // client does not retry: lost, Hermes's httpx after a 10 s freeze). The next look, a period on, comes after
    // the I/O.
    const late = now - this.#lastLook > 2 * this.#periodMs && !this.#skipped;
    this.#lastLook = now;
    this.#skipped = late;
    if (late) return;
    for (const [item, deadline] of this.#deadlines) {
      if (deadline > now) continue;
      this.#deadlines.delete(item);
      this.#expire(item);
    }
    // Stopped here, not at each delete: requests set and clear a deadline each, and a timer a request is dear.
    if (this.#deadlines.size === 0) this.#stopTimer();
  }

  delete(item: T): void {
    this.#deadlines.delete(item);
  }

  has(item: T): boolean {
    return this.#deadlines.has(item);
  }

  get size(): number {
    return this.#deadlines.size;
  }

  /** The items in the order their deadlines were started: the longest-running first. */
  keys(): IterableIterator<T> {
    return this.#deadlines.keys();
  }

  stop(): void {
    this.#stopped = true;
    this.#stopTimer();
  }

  #stopTimer(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

/** How often a sweep looks for a deadline of `timeoutMs`: a tenth of it, between 50 ms and a second. */
export function sweepPeriod(timeoutMs: number): number {
  return Math.min(1000, Math.max(50, Math.round(timeoutMs / 10)));
}
