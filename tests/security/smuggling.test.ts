/**
 * Request smuggling, kept from the red-team pass as regressions: each request hides a second one (a poll that would
 * take openclaw's message) behind framing that a proxy and the broker could read differently. The broker must
 * refuse the framing, or read it so that the hidden poll never runs: openclaw's message stays in its inbox.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { test } from "node:test";
import { publish, type RunningBroker, startBroker } from "../helpers/broker.ts";

const HIDDEN = "GET /poll?agent=openclaw HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

/** Each case: the head's framing fields, then the bytes after the blank line. */
const CASES: Array<[string, string, string]> = [
  ["Content-Length and Transfer-Encoding both", "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", `0\r\n\r\n${HIDDEN}`],
  ["two different Content-Lengths", "Content-Length: 2\r\nContent-Length: 60\r\n", `{}${HIDDEN}`],
  ["Content-Length with a sign", "Content-Length: +2\r\n", `{}${HIDDEN}`],
  ["Content-Length as a list", "Content-Length: 2, 2\r\n", `{}${HIDDEN}`],
  ["space before the colon", "Content-Length : 2\r\n", `{}${HIDDEN}`],
  ["an obscured Transfer-Encoding", "Transfer-Encoding: xchunked\r\nContent-Length: 2\r\n", `{}${HIDDEN}`],
  ["Transfer-Encoding not ending in chunked", "Transfer-Encoding: chunked, identity\r\n", `2\r\n{}\r\n0\r\n\r\n${HIDDEN}`],
  ["a folded header line", "Content-Length: 2\r\nX-Folded: a\r\n b\r\n", `{}${HIDDEN}`],
  // A bare LF may end a line (RFC 9112 §2.2, as Deno and nginx read it); hiding a second length behind one may not.
  ["a bare LF hiding a second Content-Length", "Content-Length: 2\r\nX-Note: a\nContent-Length: 60\r\n", `{}${HIDDEN}`],
];

/** Writes the bytes as they are and reads whatever comes back until the broker closes or 2 s pass. */
function sendRaw(url: string, bytes: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    let answer = "";
    const socket = connect(Number(port), hostname, () => socket.end(bytes));
    const done = () => resolve(answer);
    const timer = setTimeout(() => {
      socket.destroy();
      done();
    }, 2000);
    socket.setEncoding("utf8").on("data", (chunk: string) => (answer += chunk)).on("error", () => {}).on("close", () => {
      clearTimeout(timer);
      done();
    });
  });
}

test("request smuggling never runs the hidden request, whatever the framing", async (t) => {
  let broker: RunningBroker | undefined;
  t.after(() => broker?.cleanup());
  broker = await startBroker();
  assert.equal((await publish(broker.url, "hermes", "openclaw", { text: "for openclaw only" })).status, 200);
  const { port } = new URL(broker.url);
  for (const [name, framing, rest] of CASES) {
    const answer = await sendRaw(broker.url, `POST /broadcast?from=hermes&to=hermes HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${framing}\r\n${rest}`);
    assert.doesNotMatch(answer, /for openclaw only/, `${name}: the hidden poll was answered`);
    const inbox = await (await fetch(`${broker.url}/poll?agent=openclaw&peek=1`)).json();
    assert.deepEqual(inbox.map((message: { text: string }) => message.text), ["for openclaw only"], `${name}: the hidden poll took the message`);
  }
});

// Red team, session 52: two Host fields were served under the first, and an absolute-form target's own host was
// passed over for the Host field: a proxy in front that reads the other one routes and checks another name than
// the broker's Host rule does.
test("a request with two Host fields is refused 400, and an absolute-form target's host is the one the Host rule reads", async (t) => {
  let broker: RunningBroker | undefined;
  t.after(() => broker?.cleanup());
  broker = await startBroker();
  assert.equal((await publish(broker.url, "hermes", "openclaw", { text: "for openclaw only" })).status, 200);
  const { port } = new URL(broker.url);
  for (const hosts of [`Host: 127.0.0.1:${port}\r\nHost: evil.example`, `Host: evil.example\r\nHost: 127.0.0.1:${port}`]) {
    const answer = await sendRaw(broker.url, `GET /poll?agent=openclaw HTTP/1.1\r\n${hosts}\r\n\r\n`);
    assert.match(answer, /^HTTP\/1\.1 400 /, hosts);
    assert.match(answer, /"code":"invalid_request"/);
    assert.match(answer, /a request may have one Host header, not several/);
  }
  const absolute = await sendRaw(broker.url, `GET http://evil.example/poll?agent=openclaw HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
  assert.match(absolute, /^HTTP\/1\.1 403 /);
  assert.match(absolute, /Host \\"evil\.example\\" is not one of this broker's names/);
  // Another scheme names no host the rule could read: no route (it took the inbox under the Host field's name).
  const otherScheme = await sendRaw(broker.url, `GET ftp://evil.example/poll?agent=openclaw HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`);
  assert.match(otherScheme, /^HTTP\/1\.1 404 /);
  const inbox = await (await fetch(`${broker.url}/poll?agent=openclaw&peek=1`)).json();
  assert.deepEqual(inbox.map((message: { text: string }) => message.text), ["for openclaw only"], "nothing taken");
  // An absolute-form target naming the broker is served, as a forward proxy sends it.
  const own = await sendRaw(broker.url, `GET http://127.0.0.1:${port}/poll?agent=openclaw&peek=1 HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`);
  assert.match(own, /^HTTP\/1\.1 200 /);
  assert.match(own, /for openclaw only/);
});

// Red team 54: `node:http` answered an Expect it does not meet with an empty 417 of its own, on both runtimes.
test("a request with an Expect other than 100-continue gets 417 with a JSON error, and is not done", async (t) => {
  let broker: RunningBroker | undefined;
  t.after(() => broker?.cleanup());
  broker = await startBroker();
  const { port } = new URL(broker.url);
  const answer = await sendRaw(
    broker.url,
    `POST /broadcast?from=hermes&to=openclaw HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nExpect: foo\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`,
  );
  assert.match(answer, /^HTTP\/1\.1 417 /);
  const body = JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4));
  assert.deepEqual(body, { error: 'Expectation Failed: Expect "foo" is not one this broker meets (only 100-continue is)', code: "expectation_failed" });
  const inbox = await (await fetch(`${broker.url}/poll?agent=openclaw&peek=1`)).json();
  assert.deepEqual(inbox, [], "nothing stored");
});
