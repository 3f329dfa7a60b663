/** How many event-loop turns a commit of the broker waits for company, on the runtime it runs on. */
import { GATHER_TURNS } from "../broker/commit_queue.ts";

/**
 * The turns that can bring a publish: Node polls its sockets on every turn, so the broker's three let the publishes
 * of clients just answered join the next commit. Deno 2.9 polls no I/O on a turn of immediates (its Tokio scheduler
 * polls the I/O driver every 61 ticks, or when the event loop has nothing to run): a socket's bytes waited 61 turns
 * of `setImmediate`, so turns two and three brought nothing (9-10 messages a commit with 1, 3, 4 or 6 turns at 16
 * publishers) and cost ~3 µs of CPU each. There a commit waits the one turn that lets what arrived with its first
 * publish join.
 */
export function commitGatherTurns(): number {
  return "Deno" in globalThis ? 1 : GATHER_TURNS;
}
