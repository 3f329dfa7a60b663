/** Where a reply sits in its conversation, and the hop cap that stops two auto-replying agents from looping. */
import { InteropError } from "../errors.ts";
import type { AgentName, Thread } from "../message.ts";
import type { MessageStore } from "../store/store.ts";

/**
 * The thread of `replier`'s reply to `replyTo`, and the other party of that message (where the reply goes by
 * default): its sender, or, for a follow-up to the replier's own message, its recipient. Only a message sent to or
 * by the replier may be answered; any other id is refused exactly as an unknown one, so a reply cannot tell
 * whether an id exists, who sent it, or join (and answer an `/ask` in) a conversation of others.
 */
export async function replyContext(
  store: MessageStore,
  replier: AgentName,
  replyTo: number,
  maxHops: number,
): Promise<{ thread: Thread; otherParty: AgentName }> {
  const original = await store.find(replyTo);
  if (original === undefined || (original.to !== replier && original.from !== replier)) {
    throw new InteropError(
      "unknown_message",
      `Cannot reply to message ${replyTo} as ${replier}: no message with this id was sent to or by ${replier} (or retention removed it)`,
    );
  }
  const hops = (original.thread?.hops ?? 0) + 1;
  if (hops > maxHops) {
    throw new InteropError(
      "hop_limit",
      `Reply refused: message ${replyTo} is already ${hops - 1} replies deep (the cap is ${maxHops}, serve --max-hops); two agents auto-replying to each other are looping`,
    );
  }
  return {
    thread: { replyTo, conversation: original.thread?.conversation ?? original.id, hops },
    otherParty: original.to === replier ? original.from : original.to,
  };
}
