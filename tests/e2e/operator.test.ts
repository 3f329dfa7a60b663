/** What an operator relies on: /metrics (parsed by a real Prometheus parser), the live feed, and logs without secrets. */
import assert from "node:assert/strict";
import { test } from "node:test";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { publish, startBroker, waitFor } from "../helpers/broker.ts";
import { runCli, tempDir } from "../helpers/cli.ts";
import { openSse } from "../helpers/sse.ts";

interface Family {
  name: string;
  type: string;
  metrics: Array<{ value?: string; labels?: Record<string, string>; buckets?: Record<string, string>; count?: string }>;
}

async function scrape(url: string, headers: Record<string, string> = {}): Promise<Map<string, Family>> {
  const response = await fetch(`${url}/metrics`, { headers });
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
  const families = parsePrometheusTextFormat(await response.text()) as Family[];
  return new Map(families.map((family) => [family.name, family]));
}

function sample(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  const found = families.get(name)?.metrics.find((metric) =>
    Object.entries(labels).every(([key, value]) => metric.labels?.[key] === value)
  );
  return Number(found?.value ?? found?.count ?? 0);
}

test("/metrics parses as Prometheus text, and its counters move by exactly the messages sent and delivered", async () => {
  const broker = await startBroker();
  try {
    const before = await scrape(broker.url);
    for (const family of ["interop_messages_published_total", "interop_messages_delivered_total", "interop_open_streams",
      "interop_pending_messages", "interop_publish_commit_seconds", "interop_publish_deliver_seconds", "interop_commit_batch_messages",
      "interop_store_bytes", "process_resident_memory_bytes"]) {
      assert.ok(before.has(family), `${family} is exported`);
    }
    assert.equal(before.get("interop_publish_deliver_seconds")!.type, "HISTOGRAM");
    const stream = await openSse(`${broker.url}/subscribe?agent=openclaw`);
    for (let n = 0; n < 7; n++) assert.equal((await publish(broker.url, "hermes", "openclaw", { n })).status, 200);
    await stream.take(7);
    for (let n = 0; n < 3; n++) assert.equal((await publish(broker.url, "openclaw", "hermes", { n })).status, 200);

    const after = await scrape(broker.url);
    const moved = (name: string, labels: Record<string, string>) => sample(after, name, labels) - sample(before, name, labels);
    assert.equal(moved("interop_messages_published_total", { from: "hermes", to: "openclaw" }), 7);
    assert.equal(moved("interop_messages_published_total", { from: "openclaw", to: "hermes" }), 3);
    assert.equal(moved("interop_messages_delivered_total", { agent: "openclaw" }), 7);
    assert.equal(moved("interop_messages_delivered_total", { agent: "hermes" }), 0);
    assert.equal(sample(after, "interop_pending_messages", { agent: "hermes" }), 3);
    assert.equal(sample(after, "interop_open_streams"), 1);
    assert.equal(moved("interop_publish_deliver_seconds", {}), 7, "one latency observation per delivery");
    assert.ok(sample(after, "interop_store_bytes") > 0);
    stream.close();
  } finally {
    await broker.cleanup();
  }
});

test("with tokens, /metrics, /stats and all-traffic /events need an admin token; an agent's feed shows only its own messages", async () => {
  const dir = tempDir();
  // cron has no token: with tokens on, only configured agents and token holders have inboxes.
  const broker = await startBroker({ dataDir: dir.path, args: ["--agents", "hermes,openclaw,cron"] });
  try {
    const create = async (...args: string[]) => (await runCli(["token", "create", ...args, "--data-dir", dir.path])).stdout.trim();
    const admin = await create("--admin");
    const hermes = await create("--agent", "hermes");
    await waitFor(async () => (await fetch(`${broker.url}/metrics`)).status === 401, 5000, "tokens to take effect");
    const as = (token: string) => ({ authorization: `Bearer ${token}` });
    assert.equal((await fetch(`${broker.url}/metrics`, { headers: as(hermes) })).status, 403);
    assert.equal((await fetch(`${broker.url}/stats`, { headers: as(hermes) })).status, 403);
    await scrape(broker.url, as(admin));

    const adminFeed = await openSse(`${broker.url}/events?token=${admin}`);
    const hermesFeed = await openSse(`${broker.url}/events`, as(hermes));
    assert.equal(hermesFeed.status, 200);
    assert.equal((await publish(broker.url, "openclaw", "cron", { text: "not for hermes" }, as(admin))).status, 200, "an admin sends as anyone");
    assert.equal((await publish(broker.url, "hermes", "openclaw", { text: "from hermes" }, as(hermes))).status, 200);
    const seen = (await adminFeed.take(2)).map((event) => JSON.parse(event.data).text);
    assert.deepEqual(seen, ["not for hermes", "from hermes"]);
    assert.deepEqual((await hermesFeed.take(1)).map((event) => JSON.parse(event.data).text), ["from hermes"]);
    const pending = await (await fetch(`${broker.url}/poll?agent=openclaw`, { headers: as(admin) })).json();
    assert.deepEqual(pending.map((message: { text: string }) => message.text), ["from hermes"], "the feed took nothing from the inbox");
    adminFeed.close();
    hermesFeed.close();
  } finally {
    await broker.cleanup();
    dir.cleanup();
  }
});

for (const format of ["text", "json"]) {
  test(`--verbose --log-format ${format}: a line per request and stream, never a token or a message body`, async () => {
    const dir = tempDir();
    const broker = await startBroker({ dataDir: dir.path, args: ["--verbose", "--log-format", format] });
    try {
      const token = (await runCli(["token", "create", "--agent", "hermes", "--data-dir", dir.path])).stdout.trim();
      await waitFor(async () => (await fetch(`${broker.url}/poll?agent=hermes`)).status === 401, 5000, "the token to take effect");
      const secret = "BODY-SECRET-7f3a";
      const stream = await openSse(`${broker.url}/subscribe?agent=hermes&token=${token}`);
      await publish(broker.url, "hermes", "hermes", { text: secret }, { authorization: `Bearer ${token}` });
      await stream.take(1);
      await fetch(`${broker.url}/poll?agent=hermes&token=${token}`);
      await fetch(`${broker.url}/broadcast?from=hermes`, { method: "POST", body: `{"text":"${secret}"`, headers: { authorization: `Bearer ${token}`, "content-type": "application/json" } });
      stream.close();
      await waitFor(() => broker.log().includes("stream closed"), 5000, "the stream's end to be logged");
      await broker.stop();
      const lines = broker.log().trimEnd().split("\n");
      if (format === "json") {
        const events = lines.map((line) => JSON.parse(line));
        for (const event of events) assert.deepEqual(Object.keys(event).slice(0, 4), ["time", "level", "msg", "command"]);
        // Each event's details are fields of their own, for a shipper to filter on without parsing sentences.
        const started = events.find((event) => /listening on/.test(event.msg));
        assert.equal(started.url, broker.url);
        assert.equal(started.pid, broker.pid);
        assert.equal(started.data_dir, dir.path);
        const request = events.find((event) => event.method === "POST" && event.status === 400);
        assert.deepEqual({ ...request, time: 0, ms: 0, msg: "" }, {
          time: 0, level: "debug", msg: "", command: "serve", method: "POST", path: "/broadcast", from: "hermes", status: 400, ms: 0,
        });
        assert.equal(typeof request.ms, "number");
        const closed = events.find((event) => event.stream === "closed");
        assert.deepEqual([closed.path, closed.agent, typeof closed.seconds], ["/subscribe", "hermes", "number"]);
      }
      const text = broker.log();
      assert.match(text, /interop \S+ listening on http:\/\/127\.0\.0\.1:\d+ \(pid \d+, data dir .*, durability strict/);
      assert.match(text, /POST \/broadcast from=hermes to=hermes → 200/);
      assert.match(text, /GET \/subscribe agent=hermes → 200: stream opened/);
      assert.match(text, /POST \/broadcast from=hermes → 400/);
      assert.ok(!text.includes(token), "no token in the log");
      assert.ok(!text.includes(secret), "no message body in the log");
    } finally {
      await broker.cleanup();
      dir.cleanup();
    }
  });
}

// Newcomer, session 51: `curl -I /status` (and uptime monitors, which ask HEAD) got 405.
test("HEAD /status, /metrics, the dashboard's pages and the A2A cards answer as GET does, without a body; HEAD elsewhere (ntfy topics too) is 405 and takes nothing", async (t) => {
  const broker = await startBroker();
  t.after(() => broker.cleanup());
  assert.equal((await publish(broker.url, "hermes", "openclaw", { text: "kept" })).status, 200);
  const root = await fetch(`${broker.url}/`, { method: "HEAD", redirect: "manual" });
  assert.equal(root.status, 302);
  assert.equal(root.headers.get("location"), "/ui");
  for (const path of ["/status", "/metrics", "/ui", "/ui/app.js", "/a2a/openclaw/.well-known/agent-card.json"]) {
    const head = await fetch(`${broker.url}${path}`, { method: "HEAD" });
    assert.equal(head.status, 200, path);
    assert.ok(Number(head.headers.get("content-length")) > 0, path);
    assert.equal(await head.text(), "", path);
  }
  const poll = await fetch(`${broker.url}/poll?agent=openclaw`, { method: "HEAD" });
  assert.equal(poll.status, 405);
  assert.equal(poll.headers.get("allow"), "GET");
  // Red team 52: the ntfy paths answered 404 to a method they do not take.
  for (const [method, path, allow] of [["HEAD", "/ntfy/openclaw/json?poll=1", "GET"], ["DELETE", "/ntfy/openclaw/sse", "GET"], ["GET", "/ntfy/openclaw", "POST, PUT"]]) {
    const answer = await fetch(`${broker.url}${path}`, { method });
    assert.equal(answer.status, 405, `${method} ${path}`);
    assert.equal(answer.headers.get("allow"), allow, `${method} ${path}`);
    if (method !== "HEAD") assert.match((await answer.json()).error, new RegExp(`^Method ${method} not allowed on /ntfy/openclaw\\S*: use ${allow}; ntfy topics are`));
  }
  assert.deepEqual((await (await fetch(`${broker.url}/poll?agent=openclaw`)).json()).map((message: { text: string }) => message.text), ["kept"]);
});
