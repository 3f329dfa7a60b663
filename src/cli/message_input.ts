/** The message a command sends: TEXT arguments, --data, or standard input, in that order. */
import { type Payload, parsePayload } from "../message.ts";
import { InteropError } from "../errors.ts";
import { usageError } from "./args.ts";
import type { Io } from "./io.ts";

/** The options `send` and `ask` share for the message and its output. */
export const MESSAGE_OPTIONS = {
  data: { type: "string", short: "d" },
  json: { type: "boolean", short: "j", default: false },
  // The old name of --json, kept so scripts written for it keep working.
  "print-json": { type: "boolean", default: false },
} as const;

/**
 * `--json BODY` was the body flag before `--json` meant "print JSON" on every command. A value that opens a JSON
 * object or array is still taken as the body (deprecated: --data); anything else after --json is TEXT.
 *
 * @example
 * ```ts
 * legacyBodyFlag(["--json", '{"a":1}']); // ["--data", '{"a":1}']
 * legacyBodyFlag(["--json", "hello"]);   // ["--json", "hello"]: print JSON, send "hello"
 * ```
 */
export function legacyBodyFlag(args: string[]): string[] {
  const rewritten: string[] = [];
  for (let index = 0; index < args.length; index++) {
    const arg = args[index];
    if (arg === "--") {
      rewritten.push(...args.slice(index));
      break;
    }
    if (arg === "--json" && /^\s*[{[]/.test(args[index + 1] ?? "")) rewritten.push("--data", args[++index]);
    // A switch takes no value, so --json=VALUE can only have meant the body.
    else if (arg.startsWith("--json=")) rewritten.push(`--data=${arg.slice("--json=".length)}`);
    else rewritten.push(arg);
  }
  return rewritten;
}

export async function readMessageInput(command: string, positionals: string[], data: string | undefined, io: Io): Promise<Payload> {
  if (positionals.length > 0 && data !== undefined) {
    throw usageError(command, "Give either TEXT or --data, not both");
  }
  if (data !== undefined) return dataPayload(command, data);
  const fromStdin = positionals.length === 0;
  // Like $(…) in a shell, stdin loses one trailing newline.
  const text = fromStdin ? decodeStdin(command, await io.readStdin())?.replace(/\r?\n$/, "") ?? null : positionals.join(" ");
  // An empty message is a mistake (`send </dev/null`, an unset "$VAR"), never something to deliver.
  if (text === null || text.trim() === "") {
    const why = text === null ? "no TEXT" : `${fromStdin ? "standard input" : "TEXT"} is ${text === "" ? "empty" : "blank"}`;
    throw usageError(command, `Nothing to send: ${why}; give TEXT, --data JSON, or pipe the text on stdin`);
  }
  return { text };
}

/**
 * --data as the message: a JSON object, refused as a usage error in the CLI's terms (the broker's own wording
 * speaks of Content-Type, which a command-line user does not set).
 */
function dataPayload(command: string, data: string): Payload {
  let payload: Payload;
  try {
    payload = parsePayload(data, "application/json");
  } catch (error) {
    if (!(error instanceof InteropError)) throw error;
    const detail = error.code === "invalid_json"
      ? `not JSON (${(error.cause as Error).message}): give a JSON object, like {"text": "hello"}`
      : error.message.replace(/^Invalid body: /, "");
    throw usageError(command, `Invalid --data: ${detail}; plain text goes as TEXT, without --data`);
  }
  // Refused as empty TEXT is (an unset "$VAR" in a template): the broker stores any object, an empty one too.
  const fields = Object.keys(payload);
  const blankText = fields.length === 1 && typeof payload.text === "string" && payload.text.trim() === "";
  if (fields.length === 0 || blankText) {
    throw usageError(command, `Nothing to send: --data ${blankText ? "has only a blank text" : "is an empty object"}; give a field, like {"text": "hello"}`);
  }
  return payload;
}

/** Standard input as text: bytes that are not UTF-8 are refused, never sent as U+FFFD in their place. */
function decodeStdin(command: string, bytes: Uint8Array | null): string | null {
  if (bytes === null) return null;
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    const at = firstInvalidByte(bytes);
    const byte = bytes[at].toString(16).toUpperCase().padStart(2, "0");
    throw usageError(
      command,
      `Standard input is not UTF-8: byte 0x${byte} at offset ${at} does not start a valid character; convert it (iconv -t UTF-8), or send binary data base64-encoded in --data JSON`,
    );
  }
}

/** Where the first byte sequence that is not UTF-8 starts (bytes that the fatal decoder refused as a whole). */
function firstInvalidByte(bytes: Uint8Array): number {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  for (let at = 0; at < bytes.length;) {
    const lead = bytes[at];
    const length = lead < 0x80 ? 1 : lead >= 0xc2 && lead <= 0xdf ? 2 : lead >= 0xe0 && lead <= 0xef ? 3 : lead >= 0xf0 && lead <= 0xf4 ? 4 : 0;
    if (length === 0 || at + length > bytes.length) return at;
    try {
      decoder.decode(bytes.subarray(at, at + length));
    } catch {
      return at;
    }
    at += length;
  }
  return bytes.length - 1;
}
