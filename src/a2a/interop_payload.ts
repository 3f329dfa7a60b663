/**
 * How an A2A message rides in an interop payload (its text for every client, the message itself under `a2a`), and
 * which parts an interop message goes out as.
 */
import type { Payload } from "../message.ts";
import { type A2aMessage, type A2aPart, isObject, parsePart, type TaskState } from "./protocol.ts";
import { parseTaskState } from "./v03_shapes.ts";

/** The text of a message's text parts, one per line. */
export function textOf(parts: readonly A2aPart[]): string {
  return parts.filter((part) => part.text !== undefined).map((part) => part.text).join("\n");
}

/** Where the A2A identity of a message travels inside an interop payload. */
export const A2A_PAYLOAD_FIELD = "a2a";

/** What an interop payload carries of the A2A message it came from. */
export interface A2aPayloadFields {
  messageId: string;
  contextId: string;
  parts: A2aPart[];
  /** On an answer the outbound listener publishes: how the receiver's task ended, when not COMPLETED. */
  state?: TaskState;
}

/**
 * The interop payload of an A2A message: its text as `text` (what every interop client renders) and the message
 * itself under `a2a`, so an A2A receiver gets the parts back unchanged.
 */
export function payloadOf(message: A2aMessage, contextId: string, state?: TaskState): Payload {
  const fields: A2aPayloadFields = {
    messageId: message.messageId,
    contextId,
    parts: message.parts,
    ...(state !== undefined && state !== "TASK_STATE_COMPLETED" ? { state } : {}),
  };
  return { text: textOf(message.parts), [A2A_PAYLOAD_FIELD]: fields };
}

/** The A2A fields of a payload that came from an A2A message, or undefined for any other payload. */
export function a2aFieldsOf(payload: Payload): A2aPayloadFields | undefined {
  const fields = payload[A2A_PAYLOAD_FIELD];
  if (!isObject(fields) || typeof fields.messageId !== "string" || typeof fields.contextId !== "string") return undefined;
  if (!Array.isArray(fields.parts)) return undefined;
  const state = parseTaskState(fields.state);
  try {
    return {
      messageId: fields.messageId,
      contextId: fields.contextId,
      parts: fields.parts.map(parsePart),
      ...(state !== undefined ? { state } : {}),
    };
  } catch {
    return undefined;
  }
}

/**
 * The parts an interop message goes out as: the A2A message's own parts when it came in over A2A, else its text
 * (`text`, or `message` as the old bridge's clients write) plus, when the payload holds more than that text, the
 * whole payload as a data part.
 */
export function partsOf(payload: Payload): A2aPart[] {
  const fromA2a = a2aFieldsOf(payload);
  if (fromA2a !== undefined) return fromA2a.parts;
  const text = typeof payload.text === "string" ? payload.text : typeof payload.message === "string" ? payload.message : undefined;
  const onlyText = text !== undefined && Object.keys(payload).length === 1;
  const parts: A2aPart[] = text === undefined ? [] : [{ text }];
  if (!onlyText) parts.push({ data: payload, mediaType: "application/json" });
  return parts;
}
