/** The message a command sends: TEXT arguments, --json, or standard input, in that order. */
import { type Payload, parsePayload } from "../message.ts";
import { usageError } from "./args.ts";
import type { Io } from "./io.ts";

export async function readMessageInput(command: string, positionals: string[], json: string | undefined, io: Io): Promise<Payload> {
  if (positionals.length > 0 && json !== undefined) {
    throw usageError(command, "Give either TEXT or --json, not both");
  }
  if (json !== undefined) return parsePayload(new TextEncoder().encode(json), "application/json");
  // Like $(…) in a shell, stdin loses one trailing newline.
  const text = positionals.length > 0 ? positionals.join(" ") : (await io.readStdin())?.replace(/\r?\n$/, "") ?? null;
  if (text === null) throw usageError(command, "Nothing to send: give TEXT, --json, or pipe the text on stdin");
  return { text };
}
