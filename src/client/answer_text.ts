/** The start of an HTTP answer's body, for what an error says of it. */
import { Buffer } from "node:buffer";

/** More than any error a push receiver writes; what an endless or huge body sends past it is never read. */
const MAX_ANSWER_BYTES = 64 * 1024;

/**
 * The first `MAX_ANSWER_BYTES` of `response`'s body as text (invalid UTF-8 replaced), the rest cancelled; what came
 * before a failure, if the body fails. Read whole, a receiver that answered 500 and then streamed on grew `listen` by 150 MB a second.
 */
export async function answerText(response: Response): Promise<string> {
  if (response.body === null) return "";
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  try {
    while (bytes < MAX_ANSWER_BYTES) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      bytes += value.byteLength;
    }
  } catch {
    // Cut short: what came is what there is.
  } finally {
    reader.cancel().catch(() => {});
  }
  return new TextDecoder().decode(Buffer.concat(chunks).subarray(0, MAX_ANSWER_BYTES));
}
