/** The start of an HTTP answer's body, for what an error says of it. */

/** More than any error a broker or a receiver writes; what an endless or huge body sends past it is never read. */
const MAX_ANSWER_BYTES = 64 * 1024;

/**
 * The first `MAX_ANSWER_BYTES` of `response`'s body as text (invalid UTF-8 replaced), the rest cancelled; "" when
 * the body fails. Read whole, a receiver that answered 500 and then streamed on grew `listen` by 150 MB a second.
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
  const whole = new Uint8Array(bytes);
  let offset = 0;
  for (const chunk of chunks) {
    whole.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(whole.subarray(0, MAX_ANSWER_BYTES));
}
