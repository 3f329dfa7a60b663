/**
 * The reads under way by clients that had an agent's inbox on this store (`Interop-Had-Inbox`), so that the
 * operator's removal of the agent that lands during one does not let it create the inbox again. The check at its
 * start found the inbox; the read creates it on first use further in (after the settle clock, a lease, a wait), and
 * a removal committed in between (here, or on another broker of a shared store) had it re-created: 7 of 40 polls.
 */
import type { AgentName } from "../message.ts";

export class HolderReads {
  /** How many such reads are under way for each agent. */
  #reading = new Map<AgentName, number>();
  /** Agents removed while such a read was under way: no read creates their inbox until those reads end. */
  #removed = new Set<AgentName>();

  /** Counts a read of `agent`'s inbox by a client that had it, until the returned function is called. */
  begin(agent: AgentName): () => void {
    this.#reading.set(agent, (this.#reading.get(agent) ?? 0) + 1);
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      const left = this.#reading.get(agent)! - 1;
      if (left > 0) this.#reading.set(agent, left);
      else {
        this.#reading.delete(agent);
        this.#removed.delete(agent);
      }
    };
  }

  /** `agent`'s removal committed. */
  removed(agent: AgentName): void {
    if (this.#reading.has(agent)) this.#removed.add(agent);
  }

  /**
   * Whether creating `agent`'s inbox is refused: it was removed while a client that had it was reading. A client
   * that never had it, reading in that same moment, is told the truth too (the agent was just removed); it may
   * read again once those reads end, a moment later.
   */
  refusesCreation(agent: AgentName): boolean {
    return this.#removed.has(agent);
  }
}
