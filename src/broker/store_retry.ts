/**
 * A store write the broker must see land, though no client waits for it (a stream's entry cleared, a lease ended):
 * tried again, further apart each time, while PostgreSQL is away, until it lands or no longer matters.
 */
import { sleep } from "../sleep.ts";

/** The first wait after a failure and the most it doubles to, in ms: in an outage each try fails fast. */
export interface RetryGaps {
  firstMs: number;
  maxMs: number;
}

/**
 * Tries `attempt` until it resolves, a failure is not `retryable`, or `until` aborts (the broker stops, or the write
 * stopped mattering); the gaps double from `firstMs` to `maxMs`. Never rejects: nobody is left to tell.
 */
export async function tryUntilLanded(
  attempt: () => Promise<unknown>,
  retryable: (error: unknown) => boolean,
  until: AbortSignal,
  gaps: RetryGaps,
): Promise<void> {
  for (let delay = gaps.firstMs; !until.aborted; delay = Math.min(delay * 2, gaps.maxMs)) {
    try {
      await attempt();
      return;
    } catch (error) {
      if (!retryable(error)) return;
    }
    await sleep(delay, until);
  }
}
