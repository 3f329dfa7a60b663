/**
 * How `interop mcp` rides out the broker's database being away, or the broker itself (a restart): a 503
 * `storage_unavailable`, or a broker that could not be reached, did nothing, so the request is made again when
 * Retry-After says (a second), where failing it would lose a park or show a taken message again, fail a wait
 * the model then reports as a broken inbox, and a failed ask (its question stored) would be asked again by the model.
 */
import { InteropError, isStorageUnavailable } from "../errors.ts";
import { msUntil, sleep } from "../sleep.ts";

/** Runs `request` again while the broker cannot do it (see `afterOutage`), until `until` (`performance.now()`). */
export async function throughOutage(request: () => Promise<unknown>, until: number): Promise<void> {
  for (;;) {
    try {
      await request();
      return;
    } catch (error) {
      await afterOutage(error, msUntil(until), NEVER_ABORTED);
    }
  }
}

/**
 * After a 503 `storage_unavailable` (the broker's database away: nothing was done) or a broker unreachable (no
 * connection made; for a read, one cut before its answer, which a restarted broker's forgotten lease frees), waits
 * what Retry-After says, at most `leftMs` (or until `signal` aborts); any other error, or one with no time left, is
 * thrown again.
 */
export async function afterOutage(error: unknown, leftMs: number, signal: AbortSignal): Promise<void> {
  const nothingDone = isStorageUnavailable(error) || (error instanceof InteropError && error.code === "unreachable");
  if (!nothingDone || leftMs <= 0) throw error;
  await sleep(Math.min(((error as InteropError).retryAfter ?? 1) * 1000, leftMs), signal);
}

/** The signal of a wait nothing cuts short. */
const NEVER_ABORTED = new AbortController().signal;
