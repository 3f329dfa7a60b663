/** Retrying a step of a listener until it succeeds: a message is never skipped, only the process stopping ends it. */
import { InteropError } from "../errors.ts";
import { sleep } from "../sleep.ts";
import { backoffDelay, DEFAULT_BACKOFF } from "./backoff.ts";

export interface RetryContext {
  shutdown: AbortSignal;
  log: { warn(message: string): void; info(message: string): void };
}

/**
 * Runs `work` until it succeeds, with backoff between attempts; gives up only on shutdown. A success after failures
 * is said too: the log's last word on a step was its last "retrying", and it looked stuck (red team 57).
 */
export async function retryUntilDone<T>(work: () => Promise<T>, context: RetryContext, what: string): Promise<T> {
  for (let attempt = 0;; attempt++) {
    try {
      const result = await work();
      if (attempt > 0) context.log.info(`${what}: done at attempt ${attempt + 1}`);
      return result;
    } catch (error) {
      if (context.shutdown.aborted || (error instanceof InteropError && error.code === "output_closed")) throw error;
      // A receiver that says when to come back (429, 503) is not asked sooner.
      const delay = Math.round(Math.max(backoffDelay(attempt, DEFAULT_BACKOFF), ((error as InteropError).retryAfter ?? 0) * 1000));
      context.log.warn(`${what} failed: ${(error as Error).message}; retrying in ${delay} ms`);
      await sleep(delay, context.shutdown);
    }
  }
}
