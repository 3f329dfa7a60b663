/** Where a reply sits in its conversation, and the hop cap that stops two auto-replying agents from looping. */
import { InteropError } from "../errors.ts";
import type { AgentName, Thread } from "../message.ts";
import type { MessageStore } from "../store/store.ts";

/** The thread of a reply to `replyTo`, and who sent that message (where the reply goes by default). */
export async function replyContext(
  store: MessageStore,
  replyTo: number,
  maxHops: number,
): Promise<{ thread: Thread; originalSender: AgentName }> {
  const original = await store.find(replyTo);
  if (original === undefined) {
    throw new InteropError("unknown_message", `Cannot reply to message ${replyTo}: no such message (or retention removed it)`);
  }
  const hops = (original.thread?.hops ?? 0) + 1;
  if (hops > maxHops) {
    throw new InteropError(
      "hop_limit",
      `Reply refused: message ${replyTo} is already ${hops - 1} replies deep (the cap is ${maxHops}, serve --max-hops); two agents auto-replying to each other are looping`,
    );
  }
  return { thread: { replyTo, conversation: original.thread?.conversation ?? original.id, hops }, originalSender: original.from };
}
