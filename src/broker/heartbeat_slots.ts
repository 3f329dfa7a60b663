/**
 * Spreads the streams' heartbeats over the interval: each stream is in one of a few slots, and each tick writes one
 * slot's heartbeats. With every stream written in one tick, 1,000 streams held the event loop 15–90 ms every
 * `--heartbeat` (profiled on Node), and any request arriving then (a /status, a publish) waited behind them.
 */

/** A tick at most this often: finer slots would wake an idle broker more for no gain. */
const TICK_MS = 250;
/** Slots at most: a long `--heartbeat` (hours) would otherwise make a slot per 250 ms of it. */
const MAX_SLOTS = 64;

export class HeartbeatSlots<T> {
  /** How often to call `next()`: every stream's heartbeat is then exactly `heartbeatMs` apart. */
  readonly tickMs: number;
  #slots: Set<T>[];
  #slotOf = new Map<T, Set<T>>();
  #tick = 0;

  constructor(heartbeatMs: number) {
    const count = Math.min(MAX_SLOTS, Math.max(1, Math.floor(heartbeatMs / TICK_MS)));
    this.tickMs = heartbeatMs / count;
    this.#slots = Array.from({ length: count }, () => new Set<T>());
  }

  /** Puts `item` in the emptiest slot, so each tick writes about as many heartbeats as any other. */
  add(item: T): void {
    const slot = this.#slots.reduce((emptiest, slot) => slot.size < emptiest.size ? slot : emptiest);
    slot.add(item);
    this.#slotOf.set(item, slot);
  }

  delete(item: T): void {
    this.#slotOf.get(item)?.delete(item);
    this.#slotOf.delete(item);
  }

  /** The items whose heartbeat is due at this tick (one slot, in turn). */
  next(): Iterable<T> {
    const slot = this.#slots[this.#tick];
    this.#tick = (this.#tick + 1) % this.#slots.length;
    return slot;
  }
}
