/** The `messageId`s and `contextId`s interop gives the messages it sends over A2A. */
import { createHash } from "node:crypto";
import { type AgentName, type Envelope, messageKey } from "../message.ts";
import { a2aFieldsOf } from "./interop_payload.ts";

/** The `messageId` an interop message goes out with: fixed per message, so a redelivery is recognisable. */
export function outboundMessageId(envelope: Envelope): string {
  return `interop-${messageKey(envelope)}`;
}

/** The `contextId` of an interop message: the A2A one it came with, else one per interop conversation. */
export function contextIdOf(envelope: Envelope): string {
  return a2aFieldsOf(envelope.payload)?.contextId ?? `interop-${envelope.thread?.conversation ?? envelope.id}`;
}

/** The longest `contextId` a receiver is sent: OpenClaw's channel takes `^[A-Za-z0-9._:-]{1,128}$`. */
const MAX_SENT_CONTEXT_LENGTH = 128;

/**
 * The `contextId` a receiver's A2A server sees for `from`'s context: in the sender's namespace, since the server
 * keeps one session per contextId and any sender may name any context (interop's own ids are guessable): another
 * agent's forged context must not reach that agent's session. A name too long for the limit becomes a digest.
 */
export function senderContextId(from: AgentName, contextId: string): string {
  const scoped = `${from}:${contextId}`;
  if (scoped.length <= MAX_SENT_CONTEXT_LENGTH) return scoped;
  return `${from}:h${createHash("sha256").update(contextId).digest("hex").slice(0, 40)}`;
}

/** A fresh `contextId` for a message that came without one. */
export function newContextId(): string {
  return `ctx-${crypto.randomUUID()}`;
}
