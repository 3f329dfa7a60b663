/** The shapes of the broker's answers, so that a 2xx from another server (a wrong `--url`, a proxy's upstream) is not taken for one. */
import { METADATA_FIELD } from "../message.ts";

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A message as the broker sends it: the sender's fields and the broker's own under `interop`. */
export function isMessage(value: unknown): boolean {
  return isObject(value) && isObject(value[METADATA_FIELD]) && typeof value[METADATA_FIELD].id === "number";
}

/** The answer of a poll: an array of messages. */
export function isMessages(value: unknown): boolean {
  return Array.isArray(value) && value.every(isMessage);
}

export function isSendReply(answer: Record<string, unknown>): boolean {
  return typeof answer.id === "number" && Array.isArray(answer.ids);
}
