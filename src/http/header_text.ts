/** The text a client meant by a header value: UTF-8 bytes and RFC 2047 encoded words decoded, as ntfy reads them. */

/** `=?charset?B|Q?text?=` with the white space before it; the text may hold a `?` that is not followed by `=`. */
const ENCODED_WORD = /(\s*)=\?([^?\s]+)\?([BbQq])\?(.*?)\?=/g;
const UTF8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Decodes a header value as the runtimes hand it over: read as latin1 (one character per byte), which turns the
 * UTF-8 that clients send into mojibake. Bytes that form valid UTF-8 are read as UTF-8, anything else stays
 * latin1; then encoded words (`=?UTF-8?B?Y2Fmw6k=?=`) are decoded. A word in an unknown charset leaves the
 * value as it was (as Go's mime.WordDecoder, which ntfy uses, fails the whole value); a malformed word stays.
 *
 * @example
 * ```ts
 * headerText("caf\u00c3\u00a9"); // "café"
 * headerText("=?utf-8?q?caf=C3=A9?="); // "café"
 * ```
 */
export function headerText(raw: string): string {
  const text = utf8FromLatin1(raw);
  if (!text.includes("=?")) return text;
  // Where the last decoded word ended: white space between two encoded words is not text (RFC 2047 §6.2).
  let wordEnd = -1;
  try {
    return text.replace(ENCODED_WORD, (match, space: string, charset: string, encoding: string, encoded: string, offset: number) => {
      const bytes = encoding.toUpperCase() === "B" ? base64Bytes(encoded) : quotedPrintableBytes(encoded);
      if (bytes === undefined) {
        wordEnd = -1;
        return match;
      }
      // A label TextDecoder does not know throws a RangeError: the whole value then stays as sent.
      const decoded = new TextDecoder(charset).decode(bytes);
      const between = offset === wordEnd ? "" : space;
      wordEnd = offset + match.length;
      return between + decoded;
    });
  } catch (error) {
    if (error instanceof RangeError) return text;
    throw error;
  }
}

function utf8FromLatin1(raw: string): string {
  // Only ASCII, or already decoded by the runtime (a character above U+00FF): nothing to reinterpret.
  if (!/[\x80-\xff]/.test(raw) || /[^\x00-\xff]/.test(raw)) return raw;
  const bytes = Uint8Array.from(raw, (character) => character.charCodeAt(0));
  try {
    return UTF8.decode(bytes);
  } catch {
    return raw;
  }
}

function base64Bytes(encoded: string): Uint8Array | undefined {
  try {
    return Uint8Array.from(atob(encoded), (character) => character.charCodeAt(0));
  } catch {
    return undefined;
  }
}

/** RFC 2047's Q encoding: `_` is a space, `=XX` a byte in hex. */
function quotedPrintableBytes(encoded: string): Uint8Array | undefined {
  const bytes: number[] = [];
  for (let index = 0; index < encoded.length; index++) {
    const character = encoded[index];
    if (character === "_") bytes.push(0x20);
    else if (character !== "=") bytes.push(character.charCodeAt(0) & 0xff);
    else if (/^[0-9A-Fa-f]{2}$/.test(encoded.slice(index + 1, index + 3))) {
      bytes.push(parseInt(encoded.slice(index + 1, index + 3), 16));
      index += 2;
    } else return undefined;
  }
  return Uint8Array.from(bytes);
}
