/**
 * Routes that take messages in one answer (`/poll`, ntfy `poll=1`) take only what fits in the broker's answer
 * budget, encoded before the take commits, and nothing for a client that already left: nothing is lost.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Authenticator } from "../src/auth/authenticator.ts";
import { TokenFile } from "../src/auth/token_file.ts";
import { Broker } from "../src/broker/broker.ts";
import { uniform } from "../src/broker/per_agent.ts";
import { SETTLE_MS } from "../src/http/client_settle.ts";
import { createRouter } from "../src/http/router.ts";
import { BrokerMetrics } from "../src/metrics/broker_metrics.ts";
import type { BodyResponse, Handler } from "../src/runtime/types.ts";
import { isStream } from "../src/runtime/types.ts";
import { SqliteStore } from "../src/store/sqlite.ts";
import { testBrokerOptions } from "./helpers/broker_options.ts";
import { tempDir } from "./helpers/cli.ts";
import { bodyText } from "./helpers/response.ts";
import { fromWebRequest } from "./helpers/web_request.ts";

/** Characters one answer may hold in these tests: a few of the messages they send. */
const BUDGET = 2000;
/**
 * The largest message these tests' broker takes, as `serve --max-body-bytes` would say: a page of the store holds no
 * more messages than the budget left would at this size. A sixteenth of the budget, as 1 MiB (the default) is of 16 Mi.
 */
const MAX_MESSAGE_BYTES = BUDGET / 16;

interface Fixture {
  /** Sends `text` (text/plain) from hermes to openclaw; resolves with its id. */
  send(text: string): Promise<number>;
  get(path: string, clientGone?: AbortSignal): Promise<BodyResponse>;
  /** POSTs `body` as JSON. */
  post(path: string, body: unknown): Promise<BodyResponse>;
  pending(): number;
  /** The store's reads of inboxes so far: how many, and how many messages they returned. */
  reads: { calls: number; messages: number };
  /** Messages the store returned to lists that take nothing (`readLatest`, and `find` for each dead letter). */
  listed: { messages: number };
  /** Replies the store returned to waits for a reply (`readReplies`). */
  replies: { messages: number };
}

async function withBroker(work: (fixture: Fixture) => Promise<void>): Promise<void> {
  const dir = tempDir();
  const store = new SqliteStore(dir.path, "relaxed");
  const reads = { calls: 0, messages: 0 };
  const readAfter = store.readAfter.bind(store);
  store.readAfter = async (agent, afterId, limit, maxChars) => {
    const read = await readAfter(agent, afterId, limit, maxChars);
    reads.calls++;
    reads.messages += read.length;
    return read;
  };
  const listed = { messages: 0 };
  const readLatest = store.readLatest.bind(store);
  store.readLatest = async (agent, limit, beforeId, maxChars) => {
    const read = await readLatest(agent, limit, beforeId, maxChars);
    listed.messages += read.length;
    return read;
  };
  const find = store.find.bind(store);
  store.find = async (id) => {
    const found = await find(id);
    if (found !== undefined) listed.messages++;
    return found;
  };
  const replies = { messages: 0 };
  const readReplies = store.readReplies.bind(store);
  store.readReplies = async (agent, questionId, afterId, limit) => {
    const read = await readReplies(agent, questionId, afterId, limit);
    replies.messages += read.length;
    return read;
  };
  const broker = await Broker.open(testBrokerOptions(store, dir.path, { maxPending: uniform(100), answerBudget: BUDGET, maxMessageBytes: MAX_MESSAGE_BYTES }));
  try {
    const auth = await Authenticator.open(new TokenFile(dir.path));
    const metrics = new BrokerMetrics(() => broker.status(), []);
    const handler: Handler = createRouter(broker, {
      auth,
      metrics,
      maxBodyBytes: 64 * 1024,
      retryMs: 2000,
      onInternalError: (error) => assert.fail(String(error)),
    });
    const call = async (path: string, init: RequestInit) => {
      const response = await handler(fromWebRequest(new Request(`http://localhost${path}`, init)));
      assert.ok(!isStream(response));
      return response;
    };
    await work({
      async send(text) {
        const response = await call("/broadcast?from=hermes&to=openclaw", { method: "POST", body: text, headers: { "content-type": "text/plain" } });
        assert.equal(response.status, 200, bodyText(response));
        return JSON.parse(bodyText(response)).id;
      },
      get: (path, clientGone) => call(path, { signal: clientGone }),
      post: (path, body) => call(path, { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
      pending: () => broker.status().agents.openclaw.pending,
      reads,
      listed,
      replies,
    });
  } finally {
    await broker.close();
    dir.cleanup();
  }
}

/** A client that hung up before its answer was built. */
function gone(): AbortSignal {
  const controller = new AbortController();
  controller.abort();
  return controller.signal;
}

/** The ids of a /poll answer. */
function ids(response: BodyResponse): number[] {
  assert.equal(response.status, 200, bodyText(response));
  return JSON.parse(bodyText(response)).map((message: { interop: { id: number } }) => message.interop.id);
}

test("/poll takes only the messages whose encoding fits in the answer budget, says more are pending, and the rest follow", async () => {
  await withBroker(async ({ send, get, pending }) => {
    // 200 characters of U+0001, each escaped to 6 in JSON: about 1,250 characters a message once encoded, so one
    // answer of 2,000 holds one, though the raw text of all five is half the budget.
    const sent: number[] = [];
    for (let n = 0; n < 5; n++) sent.push(await send("\u0001".repeat(200)));
    const first = await get("/poll?agent=openclaw");
    assert.deepEqual(ids(first), [sent[0]]);
    assert.equal(first.headers["interop-more-pending"], "true");
    assert.equal(pending(), 4, "what the answer did not hold is still pending");
    const rest: number[] = [];
    for (let n = 0; n < 4; n++) rest.push(...ids(await get("/poll?agent=openclaw")));
    assert.deepEqual(rest, sent.slice(1), "nothing lost, nothing repeated");
    const empty = await get("/poll?agent=openclaw");
    assert.deepEqual(ids(empty), []);
    assert.equal(empty.headers["interop-more-pending"], undefined);
  });
});

test("/poll of small messages holds as many as fit, and a message larger than the budget still goes, alone", async () => {
  await withBroker(async ({ send, get, pending }) => {
    const small = [await send("a"), await send("b"), await send("c")];
    const huge = await send("x".repeat(BUDGET * 2));
    const after = await send("d");
    const first = await get("/poll?agent=openclaw");
    assert.deepEqual(ids(first), small);
    assert.equal(first.headers["interop-more-pending"], "true");
    assert.deepEqual(ids(await get("/poll?agent=openclaw")), [huge], "one message always goes, so a big one drains");
    assert.deepEqual(ids(await get("/poll?agent=openclaw")), [after]);
    assert.equal(pending(), 0);
  });
});

test("a /poll of small messages reads them in a few pages, and one of big messages reads few more than its answer holds", async () => {
  await withBroker(async ({ send, get, reads }) => {
    for (let n = 0; n < 15; n++) await send(`small ${n}`);
    reads.calls = reads.messages = 0;
    assert.equal(ids(await get("/poll?agent=openclaw")).length, 15);
    assert.equal(reads.messages, 15);
    assert.ok(reads.calls <= 5, `${reads.calls} reads for 15 small messages`);
    for (let n = 0; n < 30; n++) await send("z".repeat(800));
    reads.calls = reads.messages = 0;
    assert.equal(ids(await get("/poll?agent=openclaw")).length, 2);
    assert.ok(reads.messages <= 4, `read ${reads.messages} of 30 messages for an answer of 2`);
  });
});

test("a wait for a reply, leased or taking, reads a few of the replies to its question to show or hand out the first", async () => {
  // Read whole (up to 500), 300 replies of 1 MiB were read for one leased reply wait: the event loop held 12 s.
  await withBroker(async ({ send, get, post, replies }) => {
    const question = await send("question");
    for (let n = 0; n < 30; n++) assert.equal((await post(`/broadcast?from=openclaw&reply_to=${question}`, { text: `reply ${n}` })).status, 200);
    const taken = await get(`/wait?agent=hermes&reply_to=${question}&timeout=1`);
    assert.equal(JSON.parse(bodyText(taken)).text, "reply 0");
    assert.ok(replies.messages <= 4, `${replies.messages} of 30 replies read to take the first`);
    replies.messages = 0;
    const shown = await get(`/wait?agent=hermes&reply_to=${question}&timeout=1&peek=1&lease=5`);
    assert.equal(JSON.parse(bodyText(shown)).text, "reply 1");
    assert.ok(replies.messages <= 4, `${replies.messages} of 29 replies read to show the first`);
  });
});

test("a /poll peek holds what a take would, and the take up to it takes exactly that", async () => {
  await withBroker(async ({ send, get, pending }) => {
    const sent: number[] = [];
    for (let n = 0; n < 3; n++) sent.push(await send("y".repeat(800)));
    const peek = await get("/poll?agent=openclaw&peek=1");
    assert.deepEqual(ids(peek), sent.slice(0, 2));
    assert.equal(peek.headers["interop-more-pending"], "true");
    assert.equal(pending(), 3, "a peek takes nothing");
    assert.deepEqual(ids(await get(`/poll?agent=openclaw&limit=2&up_to=${sent[1]}`)), sent.slice(0, 2));
    assert.deepEqual(ids(await get("/poll?agent=openclaw&peek=1")), [sent[2]]);
  });
});

test("a /poll whose client hung up before the answer takes nothing", async () => {
  await withBroker(async ({ send, get, pending }) => {
    const sent = [await send("one"), await send("two")];
    await get("/poll?agent=openclaw", gone());
    assert.equal(pending(), 2);
    assert.deepEqual(ids(await get("/poll?agent=openclaw")), sent, "both still there for the next poll");
  });
});

test("ntfy poll=1 takes only what fits in the answer budget, and nothing for a client that hung up", async () => {
  await withBroker(async ({ send, get, pending }) => {
    const sent: number[] = [];
    for (let n = 0; n < 3; n++) sent.push(await send("\u0001".repeat(200)));
    await get("/ntfy/openclaw/json?poll=1", gone());
    assert.equal(pending(), 3, "a client that left takes nothing");
    const lines = (response: BodyResponse) => {
      assert.equal(response.status, 200, bodyText(response));
      return bodyText(response).split("\n").filter((line) => line !== "").map((line) => Number(JSON.parse(line).id.split("-")[0]));
    };
    const first = await get("/ntfy/openclaw/json?poll=1");
    assert.deepEqual(lines(first), [sent[0]]);
    assert.equal(first.headers["interop-more-pending"], "true");
    assert.equal(pending(), 2);
    assert.deepEqual([...lines(await get("/ntfy/openclaw/json?poll=1")), ...lines(await get("/ntfy/openclaw/json?poll=1"))], sent.slice(1));
    assert.equal(pending(), 0);
  });
});

test("/history answers with the newest messages that fit in one answer, oldest first, instead of failing", async () => {
  await withBroker(async ({ send, get }) => {
    const sent: number[] = [];
    for (let n = 0; n < 4; n++) sent.push(await send("h".repeat(800)));
    const history = await get("/history?agent=openclaw");
    assert.deepEqual(ids(history), sent.slice(2));
    assert.equal(history.headers["interop-more-pending"], "true");
    assert.deepEqual(JSON.parse(bodyText(history)).map((message: { interop: { pending: boolean } }) => message.interop.pending), [true, true]);
  });
});

test("/dead-letters answers with the newest letters that fit in one answer, oldest first, and holds to limit=N", async () => {
  await withBroker(async ({ send, get, post }) => {
    const sent: number[] = [];
    // Two letters of these (each with its reason, times and message) fit in the budget, three do not.
    for (let n = 0; n < 4; n++) sent.push(await send("d".repeat(700)));
    for (const id of sent) assert.equal((await post("/dead-letters?agent=openclaw", { id, reason: "410 Gone" })).status, 200);
    const letterIds = (response: BodyResponse) => JSON.parse(bodyText(response)).map((letter: { id: number }) => letter.id);
    const letters = await get("/dead-letters?agent=openclaw");
    assert.equal(letters.status, 200, bodyText(letters));
    assert.deepEqual(letterIds(letters), sent.slice(2));
    assert.equal(letters.headers["interop-more-pending"], "true");
    const newest = await get("/dead-letters?agent=openclaw&limit=1");
    assert.deepEqual(letterIds(newest), sent.slice(3));
    assert.equal(newest.headers["interop-more-pending"], undefined);
    assert.equal((await get("/dead-letters?agent=openclaw&limit=0")).status, 400);
  });
});

test("/history and /dead-letters read from the store only about what fits in one answer, not every message asked for", async () => {
  // Each list read all it was asked for before cutting it to the budget: 300 messages of 1 MiB took a 512 MiB heap down.
  await withBroker(async ({ send, get, post, listed }) => {
    const sent: number[] = [];
    for (let n = 0; n < 60; n++) sent.push(await send("b".repeat(700)));
    for (const path of ["/history?agent=openclaw&limit=60", "/dead-letters?agent=openclaw&limit=60"]) {
      // Parked after the history is read: a park takes a message that is still in the inbox out of it.
      if (path.startsWith("/dead-letters")) {
        for (const id of sent) assert.equal((await post("/dead-letters?agent=openclaw", { id, reason: "410 Gone" })).status, 200);
      }
      listed.messages = 0;
      const answer = await get(path);
      assert.equal(answer.status, 200, bodyText(answer));
      const listedIds = JSON.parse(bodyText(answer)).map((item: { id?: number; interop?: { id: number } }) => item.interop?.id ?? item.id);
      assert.deepEqual(listedIds, sent.slice(-2), path);
      assert.equal(answer.headers["interop-more-pending"], "true");
      assert.ok(listed.messages <= 4, `${path} read ${listed.messages} messages to answer with 2`);
    }
  });
});

test("a peek with lease=S holds the inbox for its take: a plain /poll meanwhile is refused (409, Retry-After), the take with lease_id ends it", async () => {
  await withBroker(async ({ send, get }) => {
    const sent = [await send("one"), await send("two")];
    const peeked = await get("/poll?agent=openclaw&peek=1&lease=60");
    assert.deepEqual(ids(peeked), sent);
    const lease = peeked.headers["interop-lease"];
    assert.ok(lease);
    // A long poll meanwhile waits for the lease rather than take what the leased reader showed.
    let waited: BodyResponse | undefined;
    const waiting = get("/wait?agent=openclaw&timeout=10").then((response) => (waited = response));
    const refused = await get("/poll?agent=openclaw");
    assert.equal(refused.status, 409);
    assert.equal(JSON.parse(bodyText(refused)).code, "inbox_leased");
    assert.equal(refused.headers["retry-after"], "60");
    assert.equal((await get("/poll?agent=openclaw&peek=1&lease=60")).status, 409);
    assert.equal(waited, undefined);
    assert.deepEqual(ids(await get(`/poll?agent=openclaw&up_to=${sent[0]}&lease_id=${lease}`)), [sent[0]]);
    await waiting;
    assert.equal(JSON.parse(bodyText(waited!)).interop.id, sent[1]);
    assert.deepEqual(ids(await get("/poll?agent=openclaw")), []);
    for (const query of ["lease=60", "peek=1&lease=0", "peek=1&lease=301", "peek=1&lease=x"]) {
      const bad = await get(`/poll?agent=openclaw&${query}`);
      assert.equal(bad.status, 400, query);
      assert.equal(JSON.parse(bodyText(bad)).code, "invalid_query", query);
    }
  });
});

test("a /wait that arrived just before a leased peek waits for that lease: it does not take what the peek showed", async () => {
  await withBroker(async ({ send, get }) => {
    const sent = [await send("one"), await send("two")];
    // The wait's settle clock (20 ms) is still running when interop poll peeks and leases the inbox.
    const waiting = get("/wait?agent=openclaw&timeout=10");
    const peeked = await get("/poll?agent=openclaw&peek=1&lease=60");
    assert.deepEqual(ids(peeked), sent);
    const lease = peeked.headers["interop-lease"];
    let waited: BodyResponse | undefined;
    void waiting.then((response) => (waited = response));
    // Past the wait's settle clock, which is when it took the first message: shown by the peek and taken by the
    // wait too, it was handed out twice (review27).
    await new Promise((resolve) => setTimeout(resolve, 5 * SETTLE_MS));
    assert.equal(waited, undefined);
    assert.deepEqual(ids(await get(`/poll?agent=openclaw&up_to=${sent[0]}&lease_id=${lease}`)), [sent[0]]);
    assert.equal(JSON.parse(bodyText(await waiting)).interop.id, sent[1]);
  });
});

test("two /poll requests at once never take the same message, with small messages or with ones the budget pages", async () => {
  await withBroker(async ({ send, get, pending }) => {
    for (const text of ["small", "\u0001".repeat(200)]) {
      const sent: number[] = [];
      for (let n = 0; n < 5; n++) sent.push(await send(text));
      const taken: number[] = [];
      // Each read awaits the store: both polls read the same pending messages before either marks them taken.
      while (taken.length < sent.length) {
        const [first, second] = await Promise.all([get("/poll?agent=openclaw"), get("/poll?agent=openclaw")]);
        taken.push(...ids(first), ...ids(second));
      }
      assert.deepEqual(taken.toSorted((a, b) => a - b), sent, "each message taken once");
      assert.equal(pending(), 0);
    }
  });
});
