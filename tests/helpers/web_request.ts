/** A web-standard `Request` as the core's `IncomingRequest`: how tests call the handler directly, without a server. */
import { bodyReadFailure, readLimited, refuseDeclaredPastLimit, utf8Text } from "../../src/runtime/read_body.ts";
import type { IncomingRequest } from "../../src/runtime/types.ts";

export function fromWebRequest(request: Request): IncomingRequest {
  // Every request is measured for the header cap, which reads all its fields: they are read once, into a Map the
  // lookups (the body's declared length among them) then use.
  let fields: Map<string, string> | undefined;
  let fieldBytes = 0;
  const readFields = () => {
    fields = new Map();
    request.headers.forEach((value, name) => {
      fields!.set(name, value);
      fieldBytes += name.length + value.length;
    });
    return fields;
  };
  const header = (name: string) => (fields ?? readFields()).get(name.toLowerCase()) ?? null;
  return {
    method: request.method,
    url: new URL(request.url),
    header,
    headerBytes() {
      if (fields === undefined) readFields();
      return fieldBytes;
    },
    async text(limit) {
      return utf8Text(await readBody(request, header("content-length"), limit));
    },
    clientGone: () => request.signal,
  };
}

async function readBody(request: Request, declared: string | null, limit: number): Promise<Uint8Array> {
  try {
    if (declared === null) return await readLimited(request.body ?? emptyChunks(), null, limit);
    // HTTP framing holds the body to its declared length, so it is read whole.
    refuseDeclaredPastLimit(declared, limit);
    return new Uint8Array(await request.arrayBuffer());
  } catch (error) {
    throw bodyReadFailure(error);
  }
}

async function* emptyChunks(): AsyncIterable<Uint8Array> {}
