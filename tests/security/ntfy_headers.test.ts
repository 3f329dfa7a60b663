/**
 * Issue 13, hole 8: ntfy header values are UTF-8 on the wire (curl, ntfy's own clients), but both runtimes hand
 * them over read as latin1, so "café" arrived as "cafÃ©". RFC 2047 encoded words are decoded as ntfy does.
 * Sent on a raw socket, byte for byte, both with Content-Length and chunked (on Node these take different paths).
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { test } from "node:test";
import { type RunningBroker, startBroker } from "../helpers/broker.ts";

/** Sends a publish to `/ntfy/hermes` whose head carries `headers` as raw bytes; resolves with the answer's status line. */
function rawPublish(broker: RunningBroker, headers: Buffer, framing: "length" | "chunked"): Promise<string> {
  const body = "hi";
  const head = Buffer.concat([
    Buffer.from(`POST /ntfy/hermes HTTP/1.1\r\nHost: 127.0.0.1:${broker.port}\r\nConnection: close\r\n`),
    headers,
    Buffer.from(framing === "length" ? `Content-Length: ${body.length}\r\n\r\n${body}` : `Transfer-Encoding: chunked\r\n\r\n2\r\n${body}\r\n0\r\n\r\n`),
  ]);
  return new Promise((resolve, reject) => {
    const socket = connect(broker.port, "127.0.0.1");
    let answer = "";
    socket.on("data", (chunk) => {
      answer += chunk.toString("latin1");
      // The answer comes after the commit: its status line is all the test needs.
      if (answer.includes("\r\n")) {
        resolve(answer.split("\r\n")[0]);
        socket.destroy();
      }
    });
    socket.on("error", reject);
    socket.on("close", () => reject(new Error(`connection closed before an answer: ${JSON.stringify(answer)}`)));
    socket.write(head);
  });
}

const header = (name: string, value: Buffer | string) => Buffer.concat([Buffer.from(`${name}: `), Buffer.from(value), Buffer.from("\r\n")]);

const CASES: Array<{ what: string; headers: Buffer; title: string; tags?: string[] }> = [
  {
    what: "raw UTF-8 bytes",
    headers: Buffer.concat([header("X-Title", Buffer.from("café ✓ 日本", "utf8")), header("X-Tags", Buffer.from("été, ok", "utf8"))]),
    title: "café ✓ 日本",
    tags: ["été", "ok"],
  },
  { what: "a base64 encoded word", headers: header("Title", "=?UTF-8?B?Y2Fmw6kg4pyT?="), title: "café ✓" },
  { what: "a quoted-printable encoded word", headers: header("t", "=?utf-8?q?caf=C3=A9_=E2=9C=93?="), title: "café ✓" },
  { what: "two encoded words, the space between them dropped", headers: header("X-Title", "=?UTF-8?Q?caf?= =?UTF-8?Q?=C3=A9?= ok"), title: "café ok" },
  { what: "a latin1 encoded word", headers: header("X-Title", "=?ISO-8859-1?Q?caf=E9?="), title: "café" },
  { what: "a latin1 byte that is not UTF-8 (kept as latin1)", headers: header("X-Title", Buffer.from([0x63, 0x61, 0x66, 0xe9])), title: "café" },
];

for (const framing of ["length", "chunked"] as const) {
  test(`ntfy header values sent ${framing === "length" ? "with Content-Length" : "chunked"} are read as UTF-8 and encoded words`, async (t) => {
    let broker: RunningBroker | undefined;
    t.after(() => broker?.cleanup());
    broker = await startBroker();
    for (const { what, headers } of CASES) {
      assert.equal(await rawPublish(broker, headers, framing), "HTTP/1.1 200 OK", what);
    }
    const inbox = await (await fetch(`${broker.url}/poll?agent=hermes`)).json();
    assert.deepEqual(
      inbox.map((message: { title?: string; tags?: string[] }) => [message.title, message.tags]),
      CASES.map(({ title, tags }) => [title, tags]),
    );
  });
}
