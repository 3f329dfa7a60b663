/**
 * Several brokers for one client (`--url A,B,C`, brokers on one shared database): requests go to the current one
 * and move on to the next when it cannot be reached, so a broker that dies or restarts stops no client.
 */
import { InteropError } from "../errors.ts";

export class BrokerUrls {
  readonly all: readonly string[];
  #current = 0;

  constructor(urls: readonly string[]) {
    if (urls.length === 0) throw new RangeError("BrokerUrls needs at least one URL");
    this.all = urls;
  }

  /** The broker requests go to now. */
  get current(): string {
    return this.all[this.#current];
  }

  /** Moves on from `url` to the next broker (after `url` failed); a no-op when another request moved on already. */
  next(url = this.current): void {
    if (this.current === url) this.#current = (this.#current + 1) % this.all.length;
  }

  /**
   * Runs `attempt` against the current broker and, while it fails because that broker is down (`isDown`), against
   * each other one in turn, at most once each. The broker that answered stays current. When every broker is down,
   * it rejects with `unreachable` (`in_doubt` when one may have done the request) naming each one's failure (or, with one broker, with that broker's own error).
   */
  async use<T>(attempt: (url: string) => Promise<T>, isDown: (error: unknown) => boolean): Promise<T> {
    const failures: Array<{ url: string; error: unknown }> = [];
    while (failures.length < this.all.length) {
      const url = this.current;
      try {
        return await attempt(url);
      } catch (error) {
        if (!isDown(error)) throw error;
        failures.push({ url, error });
        this.next(url);
      }
    }
    if (failures.length === 1) throw failures[0].error;
    const reasons = failures.map(({ url, error }) => `${url}: ${(error as Error).message}`).join("; ");
    const last = failures[failures.length - 1].error as InteropError;
    // Every broker up but none with its store: the brokers' own refusal, nothing done (exit 3, as unreachable: try
    // again later); else one that may have done the request leaves it in doubt (exit 11); else none could be reached.
    const codes = failures.map(({ error }) => (error as InteropError).code);
    const storeDown = codes.every((code) => code === "storage_unavailable");
    const code = storeDown ? "storage_unavailable" : codes.includes("in_doubt") ? "in_doubt" : "unreachable";
    throw new InteropError(code, `No broker answered (${failures.length} tried): ${reasons}`, {
      cause: last,
      status: storeDown ? last.status : undefined,
    });
  }
}
