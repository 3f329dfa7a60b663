/**
 * An awaited reply across brokers on one PostgreSQL: an `/ask` held on broker A waits for its reply, and the reply
 * published through broker B goes to the ask, not to the asker's plain `/wait` or stream on B (each saw it too: a
 * repeat); once the wait ends without it (a timeout, A killed) the reply is an ordinary message again, in order.
 */
import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import { publish, type RunningBroker, waitFor } from "../helpers/broker.ts";
import { sharedPostgres, twoBrokers } from "../helpers/postgres.ts";
import { call, connect } from "../helpers/mcp_client.ts";
import { openSse } from "../helpers/sse.ts";

const cluster = sharedPostgres();

/** Asks openclaw through A as hermes, and answers through B as openclaw: resolves with the ask's answer. */
async function askAcross(a: RunningBroker, b: RunningBroker, round: number): Promise<{ status: number; reply?: { a: string } }> {
  const asking = fetch(`${a.url}/ask?from=hermes&to=openclaw&timeout=20`, { method: "POST", body: JSON.stringify({ round }) });
  const question = await waitFor(async () => (await (await fetch(`${b.url}/poll?agent=openclaw`)).json())[0], 10_000, "the question on B");
  const replied = await fetch(`${b.url}/broadcast?from=openclaw&reply_to=${question.interop.id}`, {
    method: "POST",
    body: JSON.stringify({ a: `pong ${round}` }),
  });
  assert.equal(replied.status, 200, await replied.text());
  const answer = await asking;
  return { status: answer.status, ...await answer.json() };
}

test("an ask on A gets the reply published on B, and hermes's plain /wait on B does not get it too", async (t) => {
  const brokers = await twoBrokers(t, cluster);
  if (brokers === undefined) return;
  const [a, b] = brokers;
  assert.equal((await fetch(`${b.url}/poll?agent=hermes`)).status, 200, "hermes's inbox exists");
  // Several rounds: before, B's /wait took the reply 9 times in 10, so three rounds all passing by chance is rare.
  for (let round = 0; round < 3; round++) {
    const waited = fetch(`${b.url}/wait?agent=hermes&timeout=20`);
    const answered = await askAcross(a, b, round);
    assert.equal(answered.reply?.a, `pong ${round}`, `round ${round}: the ask has its reply`);
    // What B's /wait gets is what comes next in order, not the reply the ask took.
    assert.equal((await publish(b.url, "openclaw", "hermes", { after: round })).status, 200);
    const next = await waited;
    assert.equal(next.status, 200);
    assert.equal((await next.json()).after, round, `round ${round}: B's /wait has the next message, not the reply`);
  }
});

test("an ask on A gets the reply published on B, and hermes's stream on B carries what follows it, not the reply", async (t) => {
  const brokers = await twoBrokers(t, cluster);
  if (brokers === undefined) return;
  const [a, b] = brokers;
  const stream = await openSse(`${b.url}/subscribe?agent=hermes`);
  t.after(() => stream.close());
  for (let round = 0; round < 3; round++) {
    const answered = await askAcross(a, b, round);
    assert.equal(answered.reply?.a, `pong ${round}`, `round ${round}: the ask has its reply`);
    assert.equal((await publish(b.url, "openclaw", "hermes", { after: round })).status, 200);
    const [event] = await stream.take(1, 10_000);
    assert.equal(JSON.parse(event.data).after, round, `round ${round}: the stream's next message, not the reply`);
  }
});

// Red team 52: an ask whose recipient the operator removed waited out its timeout; removed through another broker too.
test("an ask on A whose recipient is removed through B ends at once with 410 question_gone", async (t) => {
  const brokers = await twoBrokers(t, cluster);
  if (brokers === undefined) return;
  const [a, b] = brokers;
  assert.equal((await fetch(`${b.url}/agents?agent=bee`, { method: "POST" })).status, 201);
  const started = performance.now();
  const asking = fetch(`${a.url}/ask?from=hermes&to=bee&timeout=120`, { method: "POST", body: '{"text":"there?"}' });
  await waitFor(async () => (await (await fetch(`${b.url}/status`)).json()).agents.bee?.pending === 1, 10_000, "the question at bee");
  assert.equal((await fetch(`${b.url}/agents?agent=bee&force=1`, { method: "DELETE" })).status, 200);
  const answer = await asking;
  assert.equal(answer.status, 410);
  assert.match((await answer.json()).error, /^bee was removed by the operator while the ask waited: message \d+ went with its inbox/);
  assert.ok(performance.now() - started < 60_000, "ended by the removal, not at the ask's timeout");
});

test("a reply whose wait on A ended without it is an ordinary message on B again, in order", async (t) => {
  const brokers = await twoBrokers(t, cluster);
  if (brokers === undefined) return;
  const [a, b] = brokers;
  const question = await (await publish(a.url, "hermes", "openclaw", { q: "ping" })).json();
  assert.equal((await fetch(`${a.url}/wait?agent=hermes&reply_to=${question.id}&timeout=1`)).status, 204);
  await fetch(`${b.url}/broadcast?from=openclaw&reply_to=${question.id}`, { method: "POST", body: JSON.stringify({ a: "late" }) });
  assert.equal((await publish(b.url, "openclaw", "hermes", { after: 1 })).status, 200);
  const taken = await (await fetch(`${b.url}/poll?agent=hermes&limit=10`)).json();
  assert.deepEqual(taken.map((message: { a?: string; after?: number }) => message.a ?? message.after), ["late", 1]);
});

test("a reply awaited on a broker killed meanwhile reaches hermes's stream on B once A is gone", async (t) => {
  const brokers = await twoBrokers(t, cluster);
  if (brokers === undefined) return;
  const [a, b] = brokers;
  const stream = await openSse(`${b.url}/subscribe?agent=hermes`);
  t.after(() => stream.close());
  void fetch(`${a.url}/ask?from=hermes&to=openclaw&timeout=120`, { method: "POST", body: JSON.stringify({ q: "ping" }) })
    .catch(() => {});
  const question = await waitFor(async () => (await (await fetch(`${b.url}/poll?agent=openclaw`)).json())[0], 10_000, "the question on B");
  await a.stop("SIGKILL");
  await fetch(`${b.url}/broadcast?from=openclaw&reply_to=${question.interop.id}`, { method: "POST", body: JSON.stringify({ a: "pong" }) });
  // A holds the reply no longer once its connections closed as it died; B's idle re-read (every 5 s) then finds it.
  const [event] = await stream.take(1, 30_000);
  assert.equal(JSON.parse(event.data).a, "pong");
});

test("a reply awaited on a broker killed meanwhile is hermes's to poll on B once A's connections are gone, not 15 s later", async (t) => {
  const brokers = await twoBrokers(t, cluster);
  if (brokers === undefined) return;
  const [a, b] = brokers;
  assert.equal((await fetch(`${b.url}/poll?agent=hermes`)).status, 200, "hermes's inbox exists");
  void fetch(`${a.url}/ask?from=hermes&to=openclaw&timeout=120`, { method: "POST", body: JSON.stringify({ q: "ping" }) })
    .catch(() => {});
  const question = await waitFor(async () => (await (await fetch(`${b.url}/poll?agent=openclaw`)).json())[0], 10_000, "the question on B");
  await a.stop("SIGKILL");
  await fetch(`${b.url}/broadcast?from=openclaw&reply_to=${question.interop.id}`, { method: "POST", body: JSON.stringify({ a: "pong" }) });
  // A's heartbeat, written every 5 s, is 10 to 15 s from counting it as gone: a poll within 8 s gets the reply only
  // because A's connections to the database closed when it died.
  const [reply] = await waitFor(async () => {
    const taken = await (await fetch(`${b.url}/poll?agent=hermes`)).json();
    return taken.length > 0 ? taken : undefined;
  }, 8_000, "the reply on B");
  assert.equal(reply.a, "pong");
});

/**
 * openclaw answering through B each of `count` questions the moment its stream there has it (`answer` makes the
 * reply's body from the question's), while `asker`'s stream on B is open: `answered` once all are, then `stillInOrder`
 * checks that the stream had none of the replies (what it gets next is a message published after them).
 */
async function answeringOnB(t: TestContext, b: RunningBroker, asker: string, count: number, answer: (question: Record<string, unknown>) => unknown) {
  const questions = await openSse(`${b.url}/subscribe?agent=openclaw`);
  t.after(() => questions.close());
  const replies = await openSse(`${b.url}/subscribe?agent=${asker}`);
  t.after(() => replies.close());
  const answered = (async () => {
    for (let n = 0; n < count; n++) {
      const [event] = await questions.take(1, 30_000);
      const replied = await fetch(`${b.url}/broadcast?from=openclaw&reply_to=${event.id}`, {
        method: "POST",
        body: JSON.stringify(answer(JSON.parse(event.data))),
      });
      assert.equal(replied.status, 200, await replied.text());
    }
  })();
  const stillInOrder = async () => {
    await answered;
    assert.equal((await publish(b.url, "openclaw", asker, { after: "all" })).status, 200);
    const [next] = await replies.take(1, 10_000);
    assert.equal(JSON.parse(next.data).after, "all", `${asker}'s stream on B had a reply a wait on A awaited`);
  };
  return { stillInOrder };
}

test("asks on A answered at once from a stream on B all get their replies, and hermes's stream on B none of them", async (t) => {
  const brokers = await twoBrokers(t, cluster);
  if (brokers === undefined) return;
  const [a, b] = brokers;
  const asks = 10;
  const { stillInOrder } = await answeringOnB(t, b, "hermes", asks, (question) => ({ round: question.round }));
  for (let round = 0; round < asks; round++) {
    const answer = await fetch(`${a.url}/ask?from=hermes&to=openclaw&timeout=20`, { method: "POST", body: JSON.stringify({ round }) });
    assert.equal(answer.status, 200, `round ${round}: ${await answer.clone().text()}`);
    assert.equal((await answer.json()).reply?.round, round);
  }
  await stillInOrder();
});

test("blocking and streaming A2A SendMessages on A answered at once from a stream on B all get their replies, and the caller's stream on B none of them", async (t) => {
  const brokers = await twoBrokers(t, cluster);
  if (brokers === undefined) return;
  const [a, b] = brokers;
  const calls = 6;
  // Without tokens an A2A caller is the agent a2a: its stream on B would take a reply its call on A waits for.
  const { stillInOrder } = await answeringOnB(t, b, "a2a", calls, (question) => ({ text: `pong ${question.text}` }));
  for (let round = 0; round < calls; round++) {
    const method = round % 2 === 0 ? "SendMessage" : "SendStreamingMessage";
    const answer = await fetch(`${a.url}/a2a/openclaw`, {
      method: "POST",
      headers: { "content-type": "application/json", "a2a-version": "1.0" },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: round,
        method,
        params: { message: { messageId: crypto.randomUUID(), role: "ROLE_USER", parts: [{ text: `round ${round}` }] } },
      }),
    });
    const text = await answer.text();
    assert.equal(answer.status, 200, `round ${round}: ${text}`);
    // Completed whoever took the reply: the stream on B taking it too is what stillInOrder finds.
    assert.match(text, new RegExp(`"text":"pong round ${round}"`), `round ${round} (${method}): the call has its reply`);
  }
  await stillInOrder();
});

test("interop mcp's asks on A get their replies published on B, and hermes's stream on B carries what follows each, not the reply", async (t) => {
  // Hermes's setup on a cluster: its MCP ask on one broker, interop listen on another. The ask's record ended when its
  // long poll answered: B's stream, woken by that end, took the reply before the ask's take=ID, and the ask answered
  // "No reply" after its timeout.
  const brokers = await twoBrokers(t, cluster);
  if (brokers === undefined) return;
  const [a, b] = brokers;
  const stream = await openSse(`${b.url}/subscribe?agent=hermes`);
  t.after(() => stream.close());
  const hermes = await connect(a.url, "hermes");
  t.after(() => hermes.close());
  for (let round = 0; round < 3; round++) {
    const asking = call(hermes, "ask", { to: "openclaw", json: { round }, timeout_seconds: 20 });
    const question = await waitFor(async () => {
      if ((await (await fetch(`${a.url}/status`)).json()).agents?.hermes?.waiting !== 1) return undefined;
      return (await (await fetch(`${b.url}/poll?agent=openclaw`)).json())[0];
    }, 10_000, `round ${round}: the question, and the ask's long poll on A`);
    const replied = await fetch(`${b.url}/broadcast?from=openclaw&reply_to=${question.interop.id}`, {
      method: "POST",
      body: JSON.stringify({ a: `pong ${round}` }),
    });
    assert.equal(replied.status, 200, await replied.text());
    const answered = await asking;
    assert.ok(!answered.isError, `round ${round}: ${answered.content[0].text}`);
    assert.equal(JSON.parse(answered.content[0].text).reply.a, `pong ${round}`);
    assert.equal((await publish(b.url, "openclaw", "hermes", { after: round })).status, 200);
    const [event] = await stream.take(1, 10_000);
    assert.equal(JSON.parse(event.data).after, round, `round ${round}: the stream's next message, not the reply`);
  }
});
