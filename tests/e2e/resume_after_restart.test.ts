/**
 * The resume window across a broker restart: what a stream wrote into a link that went silent comes again to a
 * client that resumes without an id (Hermes's ntfy adapter) after the broker was stopped and started on its data dir.
 */
import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";
import { cleanUpAll } from "../helpers/clean_up_all.ts";
import { tempDir } from "../helpers/cli.ts";
import { publish, type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";
import { startTcpRelay, type TcpRelay } from "../helpers/tcp_relay.ts";

const SWALLOWED = ["swallowed 1", "swallowed 2", "swallowed 3"];

const PATHS = { ntfy: "/ntfy/hermes/json", sse: "/subscribe?agent=hermes" };

/** Reads a stream until `text` arrives; resolves with everything read. */
async function readUntil(response: Response, text: string): Promise<string> {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let read = "";
  while (!read.includes(text)) {
    const { done, value } = await reader.read();
    if (done) break;
    read += decoder.decode(value, { stream: true });
  }
  await reader.cancel();
  return read;
}

async function hermes(broker: RunningBroker): Promise<{ pending: number; streams: number; redelivered: number }> {
  return (await (await fetch(`${broker.url}/status`)).json()).agents.hermes;
}

/** What a test starts (a data dir, brokers, relays, streams), stopped after it, however it ends. */
function startedByTest(t: TestContext) {
  const dir = tempDir("interop-data-");
  const started: RunningBroker[] = [];
  const relays: TcpRelay[] = [];
  const aborts: AbortController[] = [];
  t.after(() =>
    cleanUpAll(
      () => aborts.forEach((abort) => abort.abort()),
      ...relays.map((relay) => () => relay.close()),
      ...started.map((broker) => () => broker.cleanup()),
      dir.cleanup,
    )
  );
  return { dir, started, relays, aborts };
}

/**
 * Streams hermes's inbox through a relay that then goes silent, publishes SWALLOWED (the broker writes them into
 * the dead link) and stops the broker with `signal`; resolves with the ids published and the data dir's broker
 * started again.
 */
async function swallowThenRestart(
  kind: keyof typeof PATHS,
  signal: "SIGTERM" | "SIGKILL",
  dataDir: string,
  started: RunningBroker[],
  relays: TcpRelay[],
  aborts: AbortController[],
): Promise<{ ids: number[]; broker: RunningBroker }> {
  const first = await startBroker({ dataDir });
  started.push(first);
  const relay = await startTcpRelay(first.url);
  relays.push(relay);
  const abort = new AbortController();
  aborts.push(abort);
  await fetch(relay.url + PATHS[kind], { signal: abort.signal });
  await waitFor(async () => (await hermes(first)).streams === 1, 10_000, "the stream");
  relay.silence();
  const ids: number[] = [];
  for (const text of SWALLOWED) {
    const response = await publish(first.url, "openclaw", "hermes", { text });
    assert.equal(response.status, 200);
    ids.push((await response.json()).id);
  }
  await waitFor(async () => (await hermes(first)).pending === 0, 10_000, "the messages written to the silent stream");
  if (signal === "SIGKILL") {
    // The stream's cursor and replay point ride the next commit: this publish's, so the kill comes after them.
    assert.equal((await publish(first.url, "hermes", "openclaw", { text: "a commit" })).status, 200);
    assert.equal((await first.stop(signal)).signal, "SIGKILL");
  } else assert.equal((await first.stop(signal)).code, 0);
  const broker = await startBroker({ dataDir });
  started.push(broker);
  return { ids, broker };
}

for (const [kind, signal] of [["ntfy", "SIGTERM"], ["sse", "SIGTERM"], ["ntfy", "SIGKILL"]] as const) {
  test(`a ${kind} stream without an id after a ${signal} restart gets again what the broker wrote into a silent link`, async (t) => {
    const { dir, started, relays, aborts } = startedByTest(t);
    const { broker } = await swallowThenRestart(kind, signal, dir.path, started, relays, aborts);
    assert.equal((await hermes(broker)).pending, 0, "what the stream was sent stays delivered");

    const abort = new AbortController();
    aborts.push(abort);
    const resumed = await fetch(broker.url + PATHS[kind], { signal: abort.signal });
    await waitFor(async () => (await hermes(broker)).streams === 1, 10_000, "the resumed stream");
    // A message after them: the stream is read up to it, whether the swallowed ones came or not.
    assert.equal((await publish(broker.url, "openclaw", "hermes", { text: "after the restart" })).status, 200);
    const read = await readUntil(resumed, "after the restart");
    for (const text of SWALLOWED) assert.ok(read.includes(text), `${text} in:\n${read}`);
    assert.equal((await hermes(broker)).redelivered, SWALLOWED.length, "each repeat is counted");
  });
}

test("a stream resumed by id after a SIGKILL restart gets nothing again of what it had, and nothing counts as pending", async (t) => {
  const { dir, started, relays, aborts } = startedByTest(t);
  const { ids, broker } = await swallowThenRestart("sse", "SIGKILL", dir.path, started, relays, aborts);

  const abort = new AbortController();
  aborts.push(abort);
  const resumed = await fetch(`${broker.url}/subscribe?agent=hermes`, { signal: abort.signal, headers: { "Last-Event-ID": String(ids.at(-1)) } });
  await waitFor(async () => (await hermes(broker)).streams === 1, 10_000, "the resumed stream");
  assert.equal((await publish(broker.url, "openclaw", "hermes", { text: "after the restart" })).status, 200);
  const read = await readUntil(resumed, "after the restart");
  for (const text of SWALLOWED) assert.ok(!read.includes(text), `${text} not again in:\n${read}`);
  assert.deepEqual([(await hermes(broker)).pending, (await hermes(broker)).redelivered], [0, 0]);
});

test("a replay point is dropped by a run with --resume-window 0, not replayed by a later run with a window", async (t) => {
  const { dir, started, aborts } = startedByTest(t);
  const streamUntil = async (broker: RunningBroker, text: string) => {
    const abort = new AbortController();
    aborts.push(abort);
    const stream = await fetch(`${broker.url}/subscribe?agent=hermes`, { signal: abort.signal });
    assert.equal((await publish(broker.url, "openclaw", "hermes", { text })).status, 200);
    return await readUntil(stream, text);
  };
  const first = await startBroker({ dataDir: dir.path });
  started.push(first);
  assert.ok((await streamUntil(first, "before")).includes("before"));
  assert.equal((await first.stop("SIGTERM")).code, 0);
  const windowless = await startBroker({ dataDir: dir.path, args: ["--resume-window", "0"] });
  started.push(windowless);
  assert.equal((await windowless.stop("SIGTERM")).code, 0);

  const last = await startBroker({ dataDir: dir.path });
  started.push(last);
  assert.ok(!(await streamUntil(last, "after")).includes("before"), "the first run's window is not replayed");
});
