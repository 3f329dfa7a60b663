/**
 * Spreads the streams' heartbeats over the interval: each stream is in one of a few slots, and each tick writes one
 * slot's heartbeats. With every stream written in one tick, 1,000 streams held the event loop 15–90 ms every
 * `--heartbeat` (profiled on Node), and any request arriving then (a /status, a publish) waited behind them.
 */

/** A tick at most this often: finer slots would wake an idle broker more for no gain. */
const TICK_MS = 250;
/** Slots at most: a long `--heartbeat` (hours) would otherwise make a slot per 250 ms of it. */
const MAX_SLOTS = 64;
/**
 * Streams a slot takes before the next one is opened. Each tick is a wake-up of the process, which on a shared
 * machine cost 0.2-0.5 ms of CPU whatever it writes (session 31: 4 ticks a second were half of an idle broker's
 * CPU); filling slots first makes 100 streams 4 ticks per interval instead of 60, while 32 heartbeats in one
 * tick hold the event loop ~1-3 ms at the cost measured above.
 */
export const SLOT_STREAMS = 32;

export class HeartbeatSlots<T> {
  /** A tick's length: every stream's heartbeat is `heartbeatMs` apart, in its slot's tick. */
  readonly tickMs: number;
  #slots: Set<T>[];
  #slotOf = new Map<T, Set<T>>();
  /** The slot `next()` writes (one that held a stream when the ticks came to it, if any did), and when it is due. */
  #tick = 0;
  #dueAt: number;

  constructor(heartbeatMs: number, now: number) {
    const count = Math.min(MAX_SLOTS, Math.max(1, Math.floor(heartbeatMs / TICK_MS)));
    this.tickMs = heartbeatMs / count;
    this.#slots = Array.from({ length: count }, () => new Set<T>());
    this.#dueAt = now + this.tickMs;
  }

  /**
   * Puts `item` in the fullest slot with room, or else an empty one. When that slot's tick comes before the one
   * `next()` is due at, the ticks start there: returns the ms until then (`next()` is then due that much sooner),
   * so every stream's first heartbeat comes within the interval.
   */
  add(item: T, now: number): number | undefined {
    let slot: Set<T> | undefined;
    for (const candidate of this.#slots) {
      if (candidate.size > 0 && candidate.size < SLOT_STREAMS && candidate.size > (slot?.size ?? 0)) slot = candidate;
    }
    const count = this.#slots.length;
    let sooner: number | undefined;
    for (let step = 0; slot === undefined && step < count; step++) {
      const candidate = this.#slots[(this.#tick + step) % count];
      if (candidate.size > 0) continue;
      slot = candidate;
      // Its tick before the one due, if that is still to come; else the ticks reach it within the interval.
      const earlier = this.#dueAt - (count - step) * this.tickMs;
      if (step > 0 && earlier > now) {
        this.#tick = (this.#tick + step) % count;
        this.#dueAt = earlier;
        sooner = earlier - now;
      }
    }
    // Every slot full: the emptiest takes one more.
    slot ??= this.#slots.reduce((emptiest, candidate) => candidate.size < emptiest.size ? candidate : emptiest);
    slot.add(item);
    this.#slotOf.set(item, slot);
    return sooner;
  }

  delete(item: T): void {
    this.#slotOf.get(item)?.delete(item);
    this.#slotOf.delete(item);
  }

  /**
   * The items whose heartbeat is due at this tick (one slot, in turn), and in how many ms `next()` is due again:
   * the empty slots between are passed over, and with none holding a stream a whole round later.
   */
  next(now: number): { due: Iterable<T>; waitMs: number } {
    const due = this.#slots[this.#tick];
    let ticks = 1;
    while (ticks < this.#slots.length && this.#slots[(this.#tick + ticks) % this.#slots.length].size === 0) ticks++;
    this.#tick = (this.#tick + ticks) % this.#slots.length;
    this.#dueAt += ticks * this.tickMs;
    return { due, waitMs: Math.max(0, this.#dueAt - now) };
  }
}
