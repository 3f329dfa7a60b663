/** A wait for an agent's messages or replies that the operator's removal of the agent ends, unless it is refused. */
import type { AgentName } from "../message.ts";

export interface RemovalWatch {
  readonly storeId: string;
  watchRemoval(agent: AgentName, onRemoved: () => void): () => void;
  refuseRemoved(agent: AgentName, hadInboxOn: string | undefined): Promise<void>;
}

/**
 * Runs `wait` with a signal that aborts as soon as the operator starts removing `agent`, before the removal commits:
 * a wait that took while the inbox was being deleted would take from an inbox no longer known. Once the removal
 * committed, rejects with 410 `agent_removed`; one refused (messages pending, a stream open on another broker of a
 * shared store) or failed runs `wait` again, `resumed`, unless it found something or `over()` says it is done (was:
 * it answered early that nothing came). Resolves with what `wait` found, undefined for nothing.
 */
export async function waitThroughRemoval<T>(
  broker: RemovalWatch,
  agent: AgentName,
  wait: (removal: AbortSignal, resumed: boolean) => Promise<T | undefined> | undefined,
  over: () => boolean,
): Promise<T | undefined> {
  for (let resumed = false;; resumed = true) {
    const removal = new AbortController();
    const unwatch = broker.watchRemoval(agent, () => removal.abort());
    let found: T | undefined;
    try {
      found = await wait(removal.signal, resumed);
    } finally {
      unwatch();
    }
    if (found !== undefined || !removal.signal.aborted || over()) return found;
    await broker.refuseRemoved(agent, broker.storeId);
  }
}
