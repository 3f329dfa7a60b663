import assert from "node:assert/strict";
import { test } from "node:test";
import { brokerPool, publish, startBroker, waitFor } from "../helpers/broker.ts";
import { runCli } from "../helpers/cli.ts";
import { HermesLikeClient } from "../helpers/hermes_ntfy.ts";
import { openSse } from "../helpers/sse.ts";

async function subscribed(url: string, agent: string): Promise<boolean> {
  return (await (await fetch(`${url}/status`)).json()).subscribers[agent];
}

test("a client behaving like Hermes's ntfy adapter talks both ways and misses nothing while away", async () => {
  const broker = await startBroker();
  const hermes = new HermesLikeClient({
    NTFY_SERVER_URL: `${broker.url}/ntfy/@hermes`,
    NTFY_TOPIC: "hermes",
    NTFY_PUBLISH_TOPIC: "openclaw",
    NTFY_ALLOWED_USERS: "hermes",
  });
  try {
    hermes.start();
    await waitFor(() => subscribed(broker.url, "hermes"), 10_000, "the ntfy stream");

    const id = await hermes.publish("hello leo");
    assert.match(id, /^\d+-[0-9a-z]+$/);
    const polled = await runCli(["poll", "--agent", "openclaw", "--url", broker.url]);
    const [message] = polled.stdout.trimEnd().split("\n").map((line) => JSON.parse(line));
    assert.deepEqual(message, {
      text: "hello leo",
      tags: ["hermes-agent"],
      interop: { id: Number(id.split("-")[0]), from: "hermes", to: "openclaw", timestamp: message.interop.timestamp },
    });

    await publish(broker.url, "openclaw", undefined, { text: "hi hermes" });
    await waitFor(() => hermes.received.length === 1, 10_000, "the reply over ntfy");
    assert.deepEqual(hermes.received, ["hi hermes"]);

    await hermes.stop();
    await waitFor(async () => !(await subscribed(broker.url, "hermes")), 10_000, "the stream to close");
    for (let n = 1; n <= 100; n++) await publish(broker.url, "openclaw", "hermes", { text: `while away ${n}` });
    hermes.start();
    await waitFor(() => hermes.received.length >= 101, 10_000, "the 100 messages published while away");
    assert.deepEqual(hermes.received.slice(1), Array.from({ length: 100 }, (_, index) => `while away ${index + 1}`));
    await waitFor(async () => (await (await fetch(`${broker.url}/status`)).json()).queues.hermes === 0, 5000, "an empty inbox");
  } finally {
    await hermes.stop();
    await broker.cleanup();
  }
});

test("ntfy publishing takes the JSON form, tags, title and priority, and names the sender", async () => {
  const broker = await startBroker();
  try {
    const plain = await fetch(`${broker.url}/ntfy/openclaw`, {
      method: "PUT",
      headers: { "X-Title": "Build", "X-Tags": "ci, green", "X-Priority": "high", "X-Interop-From": "hermes" },
      body: "all tests pass",
    });
    const published = await plain.json();
    assert.match(published.id, /^1-[0-9a-z]+$/, "the message id, then its creation time");
    assert.deepEqual(
      { ...published, id: "1", time: 0 },
      { id: "1", time: 0, event: "message", topic: "openclaw", message: "all tests pass", title: "Build", tags: ["ci", "green"], priority: 4 },
    );
    const form = await fetch(`${broker.url}/ntfy`, { method: "POST", body: JSON.stringify({ topic: "openclaw", message: "json form", priority: 2 }) });
    assert.equal((await form.json()).priority, 2);

    // Sent on a stream: delivered, and replayed by since= (what a poll takes is not: see below).
    const reader = (await fetch(`${broker.url}/subscribe?agent=openclaw`, { headers: { "last-event-id": "0" } })).body!
      .pipeThrough(new TextDecoderStream()).getReader();
    let streamed = "";
    while (!streamed.includes("id: 2\n")) streamed += (await reader.read()).value;
    await reader.cancel();
    assert.match(streamed, /"interop":\{"id":1,"from":"hermes"/);
    await waitFor(async () => !(await subscribed(broker.url, "openclaw")), 5000, "the stream to close");
    assert.equal(await (await fetch(`${broker.url}/ntfy/openclaw/json?poll=1`)).text(), "", "nothing pending to poll");
    const replayed = await (await fetch(`${broker.url}/ntfy/openclaw/raw?poll=1&since=all`)).text();
    assert.equal(replayed, "all tests pass\njson form\n");
    const sinceId = await (await fetch(`${broker.url}/ntfy/openclaw/json?poll=1&since=1`)).text();
    assert.equal(JSON.parse(sinceId).message, "json form");
    const sinceNtfyId = await (await fetch(`${broker.url}/ntfy/openclaw/json?poll=1&since=${published.id}`)).text();
    assert.equal(JSON.parse(sinceNtfyId).message, "json form");

    const anonymous = await fetch(`${broker.url}/ntfy/openclaw`, { method: "POST", body: "who am I" });
    assert.match((await anonymous.json()).id, /^3-[0-9a-z]+$/);
    const [last] = await (await fetch(`${broker.url}/poll?agent=openclaw`)).json();
    assert.equal(last.interop.from, "ntfy");

    for (const [path, init, status] of [
      ["/ntfy/openclaw", { method: "POST", body: "" }, 400],
      ["/ntfy/Bad%20Topic", { method: "POST", body: "x" }, 400],
      ["/ntfy/openclaw", { method: "POST", body: "x", headers: { "X-Priority": "9" } }, 400],
      ["/ntfy/openclaw", { method: "POST", body: "x", headers: { "X-Priority": "0x3" } }, 400],
      // Red team, session 46: found on the names' object's prototype, stored as {} and dropped.
      ["/ntfy/openclaw", { method: "POST", body: "x", headers: { "X-Priority": "__proto__" } }, 400],
      ["/ntfy/openclaw", { method: "POST", body: "x", headers: { "X-Priority": "constructor" } }, 400],
      ["/ntfy", { method: "POST", body: "{nope" }, 400],
      ["/ntfy/openclaw/xml", {}, 404],
      ["/ntfy/openclaw/json?since=yesterday", {}, 400],
    ] as Array<[string, RequestInit, number]>) {
      const response = await fetch(`${broker.url}${path}`, init);
      assert.equal(response.status, status, path);
      assert.equal(typeof (await response.json()).error, "string");
    }
  } finally {
    await broker.cleanup();
  }
});

test("ntfy ids differ between data dirs, so a client that de-duplicates by id never drops a new broker's messages", async (t) => {
  const start = brokerPool(t);
  const ids: string[] = [];
  for (let n = 0; n < 2; n++) {
    const broker = await start();
    const answer = await fetch(`${broker.url}/ntfy/openclaw`, { method: "POST", body: "message one of a fresh store" });
    ids.push((await answer.json()).id);
  }
  assert.match(ids[0], /^1-/);
  assert.match(ids[1], /^1-/);
  assert.notEqual(ids[0], ids[1]);
});

// Red team, session 44: a JSON publish whose message was an object was refused as "Empty message", and tags given as
// a string were dropped without a word.
test("ntfy's JSON publish takes tags as a comma-separated string too, and refuses fields of the wrong type by name", async (t) => {
  const broker = await brokerPool(t)();
  const publishJson = (fields: Record<string, unknown>) => fetch(`${broker.url}/ntfy`, { method: "POST", body: JSON.stringify({ topic: "openclaw", ...fields }) });
  const tagged = await publishJson({ message: "tagged", tags: "ci, green", title: null });
  assert.deepEqual((await tagged.json()).tags, ["ci", "green"]);
  // Priority 0 is the default, as in ntfy; array tags are trimmed as the string's are.
  const trimmed = await (await publishJson({ message: "trimmed", tags: [" ci ", ""], priority: 0 })).json();
  assert.deepEqual([trimmed.tags, trimmed.priority], [["ci"], undefined]);
  for (const [fields, error] of [
    [{ message: { text: "an object" } }, '"message" must be a string, not an object'],
    [{ message: "x", title: 7 }, '"title" must be a string, not a number'],
    [{ message: "x", tags: ["ok", 1] }, '"tags" must be an array of strings, not an array holding other values'],
    [{ message: "x", tags: { ci: true } }, '"tags" must be an array of strings, not an object'],
    // Red team, session 45: these were read as priority 5, 3 and 4.
    [{ message: "x", priority: ["5"] }, '"priority" must be a number 1-5, not an array'],
    [{ message: "x", priority: "0x3" }, '"priority" must be a number 1-5, not a string'],
    [{ message: "x", priority: true }, '"priority" must be a number 1-5, not a boolean'],
    [{ message: "x", priority: 6 }, '"priority" must be a number 1-5, not 6'],
  ] as Array<[Record<string, unknown>, string]>) {
    const refused = await publishJson(fields);
    assert.equal(refused.status, 400, JSON.stringify(fields));
    assert.deepEqual(await refused.json(), { error: `Invalid JSON publish: ${error}`, code: "invalid_body" });
  }
  const inbox = await (await fetch(`${broker.url}/poll?agent=openclaw`)).json();
  assert.deepEqual(inbox.map((message: { text: string }) => message.text), ["tagged", "trimmed"], "nothing refused was stored");
});

// Red team 63: an ntfy poll's take was recorded as a stream's delivery, so a stream resuming by an id before it (listen
// after a restart, Last-Event-ID, ntfy since=) and the next id-less stream's resume window sent it again.
test("what an ntfy poll took is never written to a stream afterwards: not in the resume window, nor on a resume by id or since=", async (t) => {
  const broker = await brokerPool(t)();
  const send = async (text: string) => (await (await publish(broker.url, "hermes", "openclaw", { text })).json()).id as number;
  const first = await send("m1");
  const stream = await openSse(`${broker.url}/subscribe?agent=openclaw`);
  assert.deepEqual((await stream.take(1)).map((event) => event.id), [String(first)]);
  stream.close();
  await stream.ended;
  const polled = await send("m2");
  assert.deepEqual((await (await fetch(`${broker.url}/ntfy/openclaw/json?poll=1`)).text()).trim().split("\n").map((line) => JSON.parse(line).message), ["m2"]);
  await send("m3");
  assert.equal((await (await fetch(`${broker.url}/poll?agent=openclaw`)).json()).length, 1, "m3 taken by /poll");
  // An id-less stream gets again what the last stream was sent in the resume window (m1), never what the polls took.
  const windowed = await openSse(`${broker.url}/subscribe?agent=openclaw`);
  assert.deepEqual((await windowed.take(1)).map((event) => event.id), [String(first)]);
  await new Promise((resolve) => setTimeout(resolve, 300));
  windowed.close();
  assert.doesNotMatch(windowed.raw(), new RegExp(`^id: ${polled}$`, "m"));
  const after = await send("m4");
  const readers = [
    await openSse(`${broker.url}/subscribe?agent=openclaw`, { "last-event-id": String(first) }),
    await openSse(`${broker.url}/ntfy/openclaw/sse?since=${first}`),
  ];
  for (const [reader, skipped] of [[readers[0], 0], [readers[1], 1]] as const) {
    // ntfy's stream opens with an "open" event.
    const next = (await reader.take(skipped + 1))[skipped];
    assert.equal(next.id?.split("-")[0], String(after), `the first message after ${first} is m4, not the polled ${polled}: ${reader.raw()}`);
    reader.close();
  }
  // /history leaves out what a poll took, as it does /poll's.
  const history = await (await fetch(`${broker.url}/history?agent=openclaw`)).json();
  assert.deepEqual(history.map((message: { text: string }) => message.text), ["m1", "m4"]);
});

// Red team 63: the poll took what a leased reader had shown, whose take then answered [] without Interop-Lease-Lost.
test("an ntfy poll is refused 409 inbox_leased while another reader leases the inbox, as /poll is", async (t) => {
  const broker = await brokerPool(t)();
  await publish(broker.url, "hermes", "openclaw", { text: "shown" });
  const peek = await fetch(`${broker.url}/poll?agent=openclaw&peek=1&lease=30`);
  const lease = peek.headers.get("interop-lease")!;
  const [shown] = await peek.json();
  const polled = await fetch(`${broker.url}/ntfy/openclaw/json?poll=1`);
  assert.equal(polled.status, 409);
  assert.equal((await polled.json()).code, "inbox_leased");
  assert.ok(Number(polled.headers.get("retry-after")) >= 1);
  const take = await fetch(`${broker.url}/poll?agent=openclaw&up_to=${shown.interop.id}&lease_id=${lease}`);
  assert.equal(take.headers.get("interop-lease-lost"), null);
  assert.deepEqual((await take.json()).map((message: { text: string }) => message.text), ["shown"]);
});

// Red team 63: the key was ignored, and a retry stored the message twice.
test("an ntfy publish under an Idempotency-Key is stored once: a retry answers the first message, another body under it 409", async (t) => {
  const broker = await brokerPool(t)();
  const post = (body: string, key: string) =>
    fetch(`${broker.url}/ntfy/openclaw`, { method: "POST", headers: { "idempotency-key": key }, body });
  const first = await (await post("deploy done", "k1")).json();
  const retry = await post("deploy done", "k1");
  assert.equal(retry.status, 200);
  assert.equal((await retry.json()).id, first.id);
  const other = await post("another text", "k1");
  assert.equal(other.status, 409);
  assert.equal((await other.json()).code, "idempotency_key_reused");
  assert.equal((await post("x", "redelivery:1")).status, 400, "the broker's own keys are refused, as on /broadcast");
  const inbox = await (await fetch(`${broker.url}/poll?agent=openclaw`)).json();
  assert.deepEqual(inbox.map((message: { text: string }) => message.text), ["deploy done"]);
});

// Red team, session 46: a delay was dropped, and the message delivered at once against what its publisher asked.
test("ntfy's scheduled delivery (delay, at, in) is refused 400, never sent at once; poll=yes, X-Poll and po=1 poll, as in ntfy", async (t) => {
  const broker = await brokerPool(t)();
  const scheduled = "Scheduled delivery (delay, at, in) is not supported: the broker delivers at once; publish when the message is due";
  const json = await fetch(`${broker.url}/ntfy`, { method: "POST", body: JSON.stringify({ topic: "openclaw", message: "later", delay: "30m" }) });
  assert.deepEqual([json.status, await json.json()], [400, { error: scheduled, code: "invalid_body" }]);
  for (const [path, headers] of [["/ntfy/openclaw", { "x-delay": "tomorrow, 10am" }], ["/ntfy/openclaw", { in: "30min" }], ["/ntfy/openclaw?at=1700000000", {}]] as const) {
    const refused = await fetch(`${broker.url}${path}`, { method: "POST", headers, body: "later" });
    assert.deepEqual([refused.status, await refused.json()], [400, { error: scheduled, code: "invalid_query" }], path);
  }
  assert.equal((await fetch(`${broker.url}/ntfy/openclaw`, { method: "POST", body: "now" })).status, 200);
  const polled = await (await fetch(`${broker.url}/ntfy/openclaw/json?poll=yes`)).text();
  assert.deepEqual(polled.trim().split("\n").map((line) => JSON.parse(line).message), ["now"], "only the message sent now, and the poll ended");
  // Red team, session 47: as headers, or by ntfy's short names, these were read as a stream that never ended.
  assert.equal((await fetch(`${broker.url}/ntfy/openclaw`, { method: "POST", body: "again" })).status, 200);
  // since=all replays what retention kept but what a poll took ("now"): "again" alone, and X-Poll ended the answer.
  const asHeader = await (await fetch(`${broker.url}/ntfy/openclaw/json`, { headers: { "x-poll": "1", "x-since": "all" }, signal: AbortSignal.timeout(5000) })).text();
  assert.deepEqual(asHeader.trim().split("\n").map((line) => JSON.parse(line).message), ["again"], "X-Since: all read, X-Poll ended it");
  assert.equal((await fetch(`${broker.url}/ntfy/openclaw`, { method: "POST", body: "third" })).status, 200);
  const short = await (await fetch(`${broker.url}/ntfy/openclaw/json?po=1&si=all`, { signal: AbortSignal.timeout(5000) })).text();
  assert.deepEqual(short.trim().split("\n").map((line) => JSON.parse(line).message), ["third"]);
});

// Hermes's red team, stop 56: a Hermes reading interop through its ntfy adapter dropped every message another
// Hermes sent it (its publishes carry the adapter's echo tag, `hermes-agent`), and a message whose text is blank
// (the adapter drops those): both counted delivered, never seen.
test("two Hermes gateways on one broker get each other's messages, and a blank text reaches Hermes as its JSON", async (t) => {
  const broker = await startBroker({ args: ["--agents", "hermes,hermes2,openclaw"] });
  t.after(() => broker.cleanup());
  const hermesOf = (agent: string, peer: string) =>
    new HermesLikeClient({ NTFY_SERVER_URL: `${broker.url}/ntfy/@${agent}`, NTFY_TOPIC: agent, NTFY_PUBLISH_TOPIC: peer, NTFY_ALLOWED_USERS: agent });
  const hermes = hermesOf("hermes", "hermes2");
  const hermes2 = hermesOf("hermes2", "hermes");
  for (const client of [hermes, hermes2]) {
    client.start();
    t.after(() => client.stop());
  }
  await waitFor(async () => (await subscribed(broker.url, "hermes")) && (await subscribed(broker.url, "hermes2")), 10_000, "both streams");
  for (let n = 1; n <= 3; n++) {
    await hermes.publish(`to hermes2 ${n}`);
    await hermes2.publish(`to hermes ${n}`);
  }
  await publish(broker.url, "openclaw", "hermes", { text: " \n\t " });
  await waitFor(() => hermes.received.length === 4 && hermes2.received.length === 3, 10_000, "every message handed over");
  assert.deepEqual(hermes2.received, ["to hermes2 1", "to hermes2 2", "to hermes2 3"]);
  assert.deepEqual(hermes.received, ["to hermes 1", "to hermes 2", "to hermes 3", '{"text":" \\n\\t "}']);
  // What the publisher tagged is stored as it was: only what ntfy readers see of another agent's message leaves it out.
  const [stored] = await (await fetch(`${broker.url}/history?agent=hermes2`)).json();
  assert.deepEqual(stored.tags, ["hermes-agent"]);
});
