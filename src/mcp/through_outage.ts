/**
 * How `interop mcp` rides out the broker's database being away: a 503 `storage_unavailable` did nothing, so the
 * request is made again when Retry-After says, where failing it would lose a park or show a taken message again,
 * and a failed ask (its question stored) would be asked again by the model.
 */
import { type InteropError, isStorageUnavailable } from "../errors.ts";
import { msUntil, sleep } from "../sleep.ts";

/** Runs `request` again while the broker answers 503 `storage_unavailable` (nothing done), until `until` (`performance.now()`). */
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
 * After a 503 `storage_unavailable` (the broker's database away: nothing was done), waits what Retry-After says,
 * at most `leftMs` (or until `signal` aborts); any other error, or one with no time left, is thrown again.
 */
export async function afterOutage(error: unknown, leftMs: number, signal: AbortSignal): Promise<void> {
  if (!isStorageUnavailable(error) || leftMs <= 0) throw error;
  await sleep(Math.min(((error as InteropError).retryAfter ?? 1) * 1000, leftMs), signal);
}

/** The signal of a wait nothing cuts short. */
const NEVER_ABORTED = new AbortController().signal;
