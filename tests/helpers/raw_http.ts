/** One HTTP/1.1 exchange written byte for byte: fetch sets `Host` itself, and the attacks in tests forge it. */
import { connect } from "node:net";

export interface RawAnswer {
  status: number;
  /** Header fields by lower-case name. */
  headers: Record<string, string>;
  body: string;
}

/**
 * Sends `method target` to the broker at `url` with exactly `headers` (add `host` yourself; `Connection: close`
 * and `Content-Length` are added) and reads the answer to the end.
 */
export function rawExchange(url: string, method: string, target: string, headers: Record<string, string>, body = ""): Promise<RawAnswer> {
  const { hostname, port } = new URL(url);
  const fields = Object.entries({ ...headers, connection: "close", "content-length": String(Buffer.byteLength(body)) })
    .map(([name, value]) => `${name}: ${value}\r\n`).join("");
  return new Promise((resolve, reject) => {
    let answer = "";
    const socket = connect(Number(port), hostname, () => socket.write(`${method} ${target} HTTP/1.1\r\n${fields}\r\n${body}`));
    socket.setEncoding("utf8").on("data", (chunk: string) => (answer += chunk)).on("error", reject).on("close", () => {
      const [head, ...rest] = answer.split("\r\n\r\n");
      const [statusLine, ...lines] = head.split("\r\n");
      const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine)?.[1]);
      if (!status) return reject(new Error(`not an HTTP answer: ${JSON.stringify(answer.slice(0, 200))}`));
      const fieldsIn = Object.fromEntries(lines.map((line) => {
        const colon = line.indexOf(":");
        return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()];
      }));
      resolve({ status, headers: fieldsIn, body: rest.join("\r\n\r\n") });
    });
  });
}
