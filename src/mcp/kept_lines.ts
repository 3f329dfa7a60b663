/**
 * The client's lines on their way to the SDK's stdio transport, less the requests holding a number a 64-bit float
 * does not keep: the SDK's JSON.parse read such a number as another value (a Python client's 64-bit id
 * 12345678901234567890 as 12345678901234567000), which a `send` then stored and delivered as sent (red team 63).
 * Each such request is answered with JSON-RPC's invalid-params error naming the number, as the broker answers 400.
 * Less, too, a line longer than the SDK reads (10 MiB): it closed the session on one, answering nothing, where it
 * is now refused alone (-32600) and the session goes on.
 */
import { Buffer } from "node:buffer";
import { StringDecoder } from "node:string_decoder";
import { type Readable, Transform } from "node:stream";
// @ts-types: see src/cli/mcp.ts.
// @ts-types="../../node_modules/@modelcontextprotocol/sdk/dist/esm/types.d.ts"
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
// @ts-types="../../node_modules/@modelcontextprotocol/sdk/dist/esm/shared/stdio.d.ts"
import { STDIO_DEFAULT_MAX_BUFFER_SIZE } from "@modelcontextprotocol/sdk/shared/stdio.js";
import { formatBytes } from "../client/push_targets.ts";
import { refuseUnkeptJson } from "../message.ts";

/** `input`'s lines, those `refuse` answered left out. */
export function keptLines(input: Readable, refuse: (answer: JSONRPCMessage) => void): Readable {
  const decoder = new StringDecoder("utf8");
  // The pieces of the line under way, joined once its end came: a long message comes in many reads, and joined at
  // each read, a 64 MiB line was copied some thirty thousand times.
  let pieces: string[] = [];
  /** The bytes of the line under way; once past what the SDK reads, its pieces are let go and the rest skipped. */
  let lineBytes = 0;
  const add = (piece: string) => {
    lineBytes += Buffer.byteLength(piece);
    if (lineBytes < STDIO_DEFAULT_MAX_BUFFER_SIZE) pieces.push(piece);
    else pieces = [];
  };
  return input.pipe(
    new Transform({
      transform(chunk: Buffer, _encoding, done) {
        const text = decoder.write(chunk);
        const kept: string[] = [];
        let from = 0;
        for (let end = text.indexOf("\n"); end >= 0; end = text.indexOf("\n", from)) {
          add(text.slice(from, end));
          if (lineBytes >= STDIO_DEFAULT_MAX_BUFFER_SIZE) refuse(tooLong(lineBytes));
          else {
            const line = pieces.join("");
            if (isKept(line, refuse)) kept.push(`${line}\n`);
          }
          pieces = [];
          lineBytes = 0;
          from = end + 1;
        }
        if (from < text.length) add(text.slice(from));
        if (kept.length > 0) this.push(Buffer.from(kept.join("")));
        done();
      },
      flush(done) {
        const last = pieces.join("") + decoder.end();
        if (last !== "" && isKept(last, refuse)) this.push(Buffer.from(last));
        done();
      },
    }),
  );
}

/** Whether `line` goes on to the SDK: all but a request with an unkept number, which `refuse` answers. */
function isKept(line: string, refuse: (answer: JSONRPCMessage) => void): boolean {
  try {
    // Depth is left to the SDK and the broker, which count the message's own levels, not the call's around it.
    refuseUnkeptJson(line, Infinity);
    return true;
  } catch (unkept) {
    let call: { id?: unknown; method?: unknown };
    try {
      call = JSON.parse(line);
    } catch {
      return true; // no JSON: the SDK answers it (-32700)
    }
    // A notification or a response gets no answer: it goes on as the SDK reads it.
    if (typeof call?.method !== "string" || call.id === undefined) return true;
    // An id that is itself such a number cannot be answered as sent: JSON-RPC's id for an unreadable one is null.
    const id = typeof call.id === "string" || (typeof call.id === "number" && Number.isSafeInteger(call.id)) ? call.id : null;
    refuse({ jsonrpc: "2.0", id, error: { code: -32602, message: (unkept as Error).message } } as unknown as JSONRPCMessage);
    return false;
  }
}

/** The refusal of a line of `bytes` the SDK would not read (its id cannot be read without reading it: null). */
function tooLong(bytes: number): JSONRPCMessage {
  const limit = STDIO_DEFAULT_MAX_BUFFER_SIZE;
  return {
    jsonrpc: "2.0",
    id: null,
    error: {
      code: -32600,
      message: `Invalid Request: a line of ${formatBytes(bytes)} bytes, over the ${formatBytes(limit)} ` +
        "one request may take here: nothing of it was done; send a message that large with POST /broadcast",
    },
  } as unknown as JSONRPCMessage;
}
