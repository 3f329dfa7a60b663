/**
 * Whether a local store's writes fail (a full disk, a file system gone read-only, an I/O error): told from the last
 * write's outcome, so that `/status` and the log say so while every publish is refused, not only its clients.
 */
export class WriteHealth {
  #warn: (message: string) => void;
  #failing: { since: Date; reason: string; count: number } | undefined;

  /** `warn` hears when writes start failing and when they succeed again: once each, not per failed write. */
  constructor(warn: (message: string) => void) {
    this.#warn = warn;
  }

  /** Why writes fail now, and since when; undefined while the last write succeeded. */
  get failure(): string | undefined {
    const failing = this.#failing;
    if (failing === undefined) return undefined;
    return `its writes fail since ${failing.since.toISOString()} (${failing.count} refused): ${failing.reason}`;
  }

  failed(reason: string): void {
    if (this.#failing !== undefined) {
      this.#failing.count++;
      this.#failing.reason = reason;
      return;
    }
    this.#failing = { since: new Date(), reason, count: 1 };
    this.#warn(`storage: a write failed (${reason}); requests that write are refused until one succeeds`);
  }

  succeeded(): void {
    const failing = this.#failing;
    if (failing === undefined) return;
    this.#failing = undefined;
    const seconds = Math.round((Date.now() - failing.since.getTime()) / 1000);
    this.#warn(`storage: writes succeed again, after ${failing.count} failed over ${seconds} s`);
  }
}
