/** Enough PNG decoding to tell a real screenshot from a blank one, with node:zlib. */
import { Buffer } from "node:buffer";
import { inflateSync } from "node:zlib";

/** The number of distinct byte values in the image's filtered scanlines: a blank page has a handful. */
export function distinctPixelBytes(png: Uint8Array): number {
  const bytes = Buffer.from(png);
  const chunks: Buffer[] = [];
  for (let offset = 8; offset < bytes.length;) {
    const length = bytes.readUInt32BE(offset);
    const type = bytes.toString("latin1", offset + 4, offset + 8);
    if (type === "IDAT") chunks.push(bytes.subarray(offset + 8, offset + 8 + length));
    offset += 12 + length;
  }
  return new Set(inflateSync(Buffer.concat(chunks))).size;
}
