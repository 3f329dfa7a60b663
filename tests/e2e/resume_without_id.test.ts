/**
 * Clients that reconnect without an id (Hermes's ntfy adapter: no `since=`, de-duplicates by id; the old SSE
 * client: no Last-Event-ID, no de-duplication) behind a relay that freezes, dies and comes back, or goes silent.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { publish, type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";
import { startTcpRelay, type TcpRelay } from "../helpers/tcp_relay.ts";

const MESSAGES = 50;
/** Scaled down from Hermes's 90 s (the broker's heartbeat is scaled alike). */
const READ_TIMEOUT_MS = 1500;

type Kind = "ntfy" | "sse";

interface IdlessClient {
  /** Every message id received, repeats included, in order of arrival. */
  received: number[];
  stop(): void;
}

/** Follows hermes's inbox through `url` as the client kind does: reconnecting without an id after any failure. */
function followWithoutId(url: string, kind: Kind): IdlessClient {
  const received: number[] = [];
  let stopped = false;
  let current: AbortController | undefined;
  const path = kind === "ntfy" ? "/ntfy/hermes/json?poll=false" : "/subscribe?agent=hermes";
  const idOf = (line: string): number | undefined => {
    if (kind === "ntfy") {
      const event = line.trim() === "" ? undefined : JSON.parse(line);
      return event?.event === "message" ? Number(event.id.split("-")[0]) : undefined;
    }
    return line.startsWith("data: ") ? JSON.parse(line.slice(6)).interop.id : undefined;
  };
  const readOnce = async () => {
    current = new AbortController();
    const response = await fetch(url + path, { signal: current.signal });
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error("read timeout")), READ_TIMEOUT_MS)));
      try {
        const { done, value } = await Promise.race([reader.read(), timeout]);
        if (done) return;
        buffer += decoder.decode(value, { stream: true });
      } finally {
        clearTimeout(timer);
      }
      let end: number;
      while ((end = buffer.indexOf("\n")) >= 0) {
        const id = idOf(buffer.slice(0, end));
        buffer = buffer.slice(end + 1);
        if (id !== undefined) received.push(id);
      }
    }
  };
  void (async () => {
    while (!stopped) {
      try {
        await readOnce();
      } catch {
        // Reset, refused or read timeout: reconnect, as both clients do.
      }
      current?.abort();
      if (!stopped) await new Promise((resolve) => setTimeout(resolve, 200));
    }
  })();
  return {
    received,
    stop() {
      stopped = true;
      current?.abort();
    },
  };
}

type Fault = "frozen, killed and restored" | "silent";

/** Publishes the messages 30 ms apart, breaking the relay on the way as `fault` says. */
async function publishThrough(broker: RunningBroker, relay: TcpRelay, fault: Fault): Promise<void> {
  for (let n = 1; n <= MESSAGES; n++) {
    if (fault === "silent" && n === 20) relay.silence();
    if (fault !== "silent" && n === 20) relay.freeze();
    if (fault !== "silent" && n === 30) relay.kill();
    if (fault !== "silent" && n === 40) relay.restore();
    assert.equal((await publish(broker.url, "openclaw", "hermes", { text: `message ${n}` })).status, 200);
    await new Promise((resolve) => setTimeout(resolve, 30));
  }
}

for (const kind of ["ntfy", "sse"] as const) {
  for (const fault of ["frozen, killed and restored", "silent"] as const) {
    const who = kind === "ntfy" ? "a client like Hermes's ntfy adapter (no since=, de-duplicates by id)" : "a client like the old SSE client (no Last-Event-ID)";
    test(`${who} behind a relay ${fault} gets all ${MESSAGES} messages`, async (t) => {
      let broker: RunningBroker | undefined;
      let relay: TcpRelay | undefined;
      let client: IdlessClient | undefined;
      t.after(async () => {
        client?.stop();
        await relay?.close();
        await broker?.cleanup();
      });
      broker = await startBroker({ args: ["--heartbeat", "300ms", "--resume-window", "10s"] });
      relay = await startTcpRelay(broker.url);
      client = followWithoutId(relay.url, kind);
      const following = client;
      await waitFor(async () => (await (await fetch(`${broker!.url}/status`)).json()).agents.hermes.streams === 1, 10_000, "the stream");
      await publishThrough(broker, relay, fault);

      const all = Array.from({ length: MESSAGES }, (_, index) => index + 1);
      const distinct = () => [...new Set(following.received)];
      await waitFor(() => distinct().length === MESSAGES, 20_000, `all ${MESSAGES} messages (have ${distinct().length})`);
      const repeats = following.received.length - MESSAGES;
      const { redelivered } = (await (await fetch(`${broker.url}/status`)).json()).agents.hermes;
      t.diagnostic(`${kind}, ${fault}: ${MESSAGES} distinct, ${repeats} repeats received; the broker counts ${redelivered} redelivered`);
      // What the agent sees: once each, in order, after de-duplication by id (Hermes's adapter; the old client sees repeats).
      assert.deepEqual(distinct(), all);
      assert.ok(repeats <= redelivered, "every repeat a client gets is counted in /status");
      const metrics = await (await fetch(`${broker.url}/metrics`)).text();
      assert.match(metrics, new RegExp(`interop_messages_redelivered_total\\{agent="hermes"\\} ${redelivered}\\n`));
    });
  }
}

/** Reads an ntfy stream until `text` arrives; resolves with everything read. */
async function readUntil(response: Response, text: string): Promise<string> {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let read = "";
  while (!read.includes(text)) read += decoder.decode((await reader.read()).value, { stream: true });
  await reader.cancel();
  return read;
}

for (const window of ["3m", "0"]) {
  test(`a resume without an id ${window === "0" ? "with --resume-window 0 gets only what is pending" : "gets again what the last stream was sent (default window)"}`, async (t) => {
    let broker: RunningBroker | undefined;
    t.after(() => broker?.cleanup());
    broker = await startBroker({ args: ["--resume-window", window] });
    const streams = async () => (await (await fetch(`${broker!.url}/status`)).json()).agents.hermes.streams;
    const first = await fetch(`${broker.url}/ntfy/hermes/json`);
    await waitFor(async () => await streams() === 1, 10_000, "the first stream");
    await publish(broker.url, "openclaw", "hermes", { text: "sent to the first stream" });
    await readUntil(first, "sent to the first stream");
    await waitFor(async () => await streams() === 0, 10_000, "the first stream to end");

    const second = await fetch(`${broker.url}/ntfy/hermes/json`);
    await waitFor(async () => await streams() === 1, 10_000, "the second stream");
    await publish(broker.url, "openclaw", "hermes", { text: "sent to the second stream" });
    const read = await readUntil(second, "sent to the second stream");
    assert.equal(read.includes("sent to the first stream"), window !== "0");
  });
}
