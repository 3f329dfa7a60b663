/**
 * On a store other brokers share: a publish refused for a recipient's inbox another broker removed (this broker's
 * view had not caught up) is tried once more, on the new view.
 */
import type { InteropError } from "../errors.ts";

/** A publish in two steps: who gets it, then the commit. */
export interface PublishSteps<Addressed, Result> {
  /** The recipients and their inboxes, their copies counted against the rate limit. */
  address(): Promise<Addressed>;
  /** Stores the messages for the addressed inboxes; `first` is false on the retry. */
  commit(addressed: Addressed, first: boolean): Promise<Result>;
  /** Gives back to the rate limit what `address` counted (its commit was refused). */
  uncount(addressed: Addressed): void;
}

/**
 * Runs `steps`. If a shared store refused the commit as to an unknown agent, then once `look` has brought the view up
 * to date, the publish is what it would have been had the view been current: refused as to an unknown agent, or to
 * a new inbox where admission creates one; a broadcast goes to those left. The rate limit counts it so too: the
 * first try's copies are given back and the retry's counted, whole (a broadcast to the new view may be too big,
 * or refused before it counts anything, as one with no recipient left is).
 */
export async function publishOnCurrentView<Addressed, Result>(
  steps: PublishSteps<Addressed, Result>,
  shared: boolean,
  look: () => Promise<void>,
): Promise<Result> {
  const addressed = await steps.address();
  try {
    return await steps.commit(addressed, true);
  } catch (error) {
    if (!shared || (error as InteropError).code !== "unknown_agent") throw error;
    steps.uncount(addressed);
    await look();
    return await steps.commit(await steps.address(), false);
  }
}
