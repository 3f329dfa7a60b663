/** The benchmark's scenarios: the same load driven at each system, measured the same way. */
import { Connection } from "./load/connection.ts";
import { cpuSeconds, ownCpuSeconds, rssBytes } from "./load/proc.ts";
import { readSse, type SseReader } from "./load/sse_reader.ts";
import type { RunningSystem } from "./systems.ts";

/** What every scenario reports; the table shows the fields a scenario fills. */
export interface Figures {
  messages?: number;
  perSecond?: number;
  p50?: number;
  p90?: number;
  p99?: number;
  max?: number;
  lost?: number;
  duplicated?: number;
  reordered?: number;
  /** Server CPU per delivered message, in µs (user + system, all its processes). */
  serverCpuUs?: number;
  /** Of `serverCpuUs`, the shared store's (PostgreSQL's processes), in µs. */
  storeCpuUs?: number;
  /** The load generator's own CPU per delivered message, in µs. */
  loadCpuUs?: number;
  /** Server memory per open stream, in KiB. */
  kibPerStream?: number;
  /** Time to open every stream, in s. */
  openSeconds?: number;
  streams?: number;
  note?: string;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Counts deliveries per message and order per sender; messages carry {p, seq, t}. */
class Ledger {
  latencies: number[] = [];
  #seen = new Map<string, number>();
  #lastSeq = new Map<string, number>();
  duplicated = 0;
  reordered = 0;

  /** Records one delivery to `reader` (fan-out readers each get their own order). */
  record(reader: string, data: string): void {
    const now = performance.now();
    const { p, seq, t } = JSON.parse(data) as { p: number; seq: number; t: number };
    const key = `${reader}/${p}/${seq}`;
    const count = (this.#seen.get(key) ?? 0) + 1;
    this.#seen.set(key, count);
    if (count > 1) {
      this.duplicated++;
      return;
    }
    this.latencies.push(now - t);
    const order = `${reader}/${p}`;
    if (seq < (this.#lastSeq.get(order) ?? -1)) this.reordered++;
    this.#lastSeq.set(order, seq);
  }

  get delivered(): number {
    return this.#seen.size;
  }

  async waitFor(count: number, timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (this.delivered < count && performance.now() < deadline) await sleep(10);
  }

  figures(expected: number): Figures {
    const sorted = [...this.latencies].sort((a, b) => a - b);
    const at = (q: number) => sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
    return {
      messages: expected,
      p50: at(0.5),
      p90: at(0.9),
      p99: at(0.99),
      max: sorted.at(-1) ?? NaN,
      lost: expected - this.delivered,
      duplicated: this.duplicated,
      reordered: this.reordered,
    };
  }
}

/** The benchmark's message text: a short line, as in most scenarios. */
const SHORT_TEXT = "benchmark message";
/** The publisher number of messages sent before a measurement, to warm the server up (their deliveries are kept apart). */
const WARM_UP = 1;
const message = (p: number, seq: number, text = SHORT_TEXT) => JSON.stringify({ p, seq, t: performance.now(), text });

/**
 * The system's brokers: several when they share one store, where the scenarios read on one and publish on another
 * (`brokers(system)[i % n]`), so every message crosses brokers; one for every other system.
 */
function brokers(system: RunningSystem): string[] {
  return system.urls ?? [system.url];
}

/** The broker `offset` places after `index` among `urls` (the same one when there is only one). */
const other = (urls: string[], index: number, offset = 1) => urls[(index + offset) % urls.length];

async function subscribe(url: string, agent: string, onEvent: (id: string | undefined, data: string) => void, lastId?: string) {
  const reader = readSse(`${url}/subscribe?agent=${agent}`, onEvent, lastId);
  const status = await reader.opened;
  if (status !== 200) throw new Error(`subscribe ${agent}: HTTP ${status}`);
  return reader;
}

/** Measures server and generator CPU over `work`, per delivered message. */
async function measureCpu(system: RunningSystem, work: () => Promise<number>): Promise<Figures> {
  const pids = system.pids();
  const storePids = system.storePids?.() ?? [];
  const [server, store, own] = [cpuSeconds(pids), cpuSeconds(storePids), ownCpuSeconds()];
  const delivered = await work();
  return {
    serverCpuUs: ((cpuSeconds(pids) - server) / delivered) * 1e6,
    storeCpuUs: system.storePids ? ((cpuSeconds(storePids) - store) / delivered) * 1e6 : undefined,
    loadCpuUs: ((ownCpuSeconds() - own) / delivered) * 1e6,
  };
}

/** Publish→deliver latency at a fixed rate, hermes → openclaw over one stream (published on another broker). */
export async function latency(system: RunningSystem, rate: number, seconds: number): Promise<Figures> {
  const ledger = new Ledger();
  const urls = brokers(system);
  const reader = await subscribe(urls[0], "openclaw", (_id, data) => ledger.record("openclaw", data));
  const connections = Array.from({ length: 4 }, () => new Connection(other(urls, 0)));
  const total = Math.round(rate * seconds);
  let failed = 0;
  const cpu = await measureCpu(system, async () => {
    const start = performance.now();
    const inFlight: Promise<unknown>[] = [];
    for (let seq = 0; seq < total; seq++) {
      const due = start + (seq * 1000) / rate;
      if (due > performance.now()) await sleep(due - performance.now());
      // Order is checked per connection: requests in flight on different connections may commit in either order.
      const connection = seq % connections.length;
      inFlight.push(connections[connection].request("POST", "/broadcast?from=hermes&to=openclaw", message(connection, seq))
        .then((status) => status < 300 || failed++, () => failed++));
      if (inFlight.length >= connections.length) await inFlight.shift();
    }
    await Promise.all(inFlight);
    await ledger.waitFor(total, 10_000);
    return ledger.delivered;
  });
  reader.close();
  for (const connection of connections) connection.close();
  return { ...ledger.figures(total), ...cpu, perSecond: rate, note: failed ? `${failed} publishes refused` : undefined };
}

/** The inbox read on broker `index` in the throughput scenario. */
export const throughputInbox = (index: number) => index === 0 ? "openclaw" : `openclaw${index + 1}`;

/**
 * Maximum sustained throughput: `publishers` connections as fast as they can for `seconds`, one stream receiving.
 * With a `batch` size above 1, each request carries that many messages (newline-delimited JSON, interop's batch
 * publish); with a `depth` above 1, each connection keeps that many requests pipelined (HTTP/1.1, answers in order).
 * With several brokers, each reads one inbox (`throughputInbox`) and the publishers, spread over the inboxes, write
 * to each from the other brokers in turn.
 */
export async function throughput(system: RunningSystem, publishers: number, seconds: number, batch = 1, depth = 1): Promise<Figures> {
  const ledger = new Ledger();
  const urls = brokers(system);
  const readers = await Promise.all(urls.map((url, index) => {
    const agent = throughputInbox(index);
    return subscribe(url, agent, (_id, data) => ledger.record(agent, data));
  }));
  let acknowledged = 0;
  let elapsed = 0;
  const cpu = await measureCpu(system, async () => {
    const start = performance.now();
    const end = start + seconds * 1000;
    await Promise.all(Array.from({ length: publishers }, async (_, p) => {
      const inbox = p % urls.length;
      const connection = new Connection(other(urls, inbox, 1 + (Math.floor(p / urls.length) % Math.max(1, urls.length - 1))));
      const path = `/broadcast?from=hermes&to=${throughputInbox(inbox)}`;
      const inFlight: Promise<number>[] = [];
      const answered = (status: number) => {
        if (status < 300) acknowledged += batch;
      };
      for (let seq = 0; performance.now() < end; seq += batch) {
        inFlight.push(
          batch === 1
            ? connection.request("POST", path, message(p, seq))
            : connection.request(
              "POST",
              path,
              Array.from({ length: batch }, (_, i) => message(p, seq + i)).join("\n"),
              "application/x-ndjson",
            ),
        );
        if (inFlight.length >= depth) answered(await inFlight.shift()!);
      }
      for (const status of await Promise.all(inFlight)) answered(status);
      connection.close();
    }));
    await ledger.waitFor(acknowledged, 15_000);
    elapsed = (performance.now() - start) / 1000;
    return ledger.delivered;
  });
  for (const reader of readers) reader.close();
  const { p50, p90, p99, lost, duplicated, reordered } = ledger.figures(acknowledged);
  return { messages: acknowledged, perSecond: ledger.delivered / elapsed, p50, p90, p99, lost, duplicated, reordered, ...cpu };
}

/**
 * One publish fanned out to `agents` subscribers, `count` times at `rate` per second; each message carries `text`.
 * As many broadcasts go first unmeasured, on every system alike: the figure is a warm server's cost per delivery,
 * not its JIT's first pass over the code (a fresh interop spent ~44 µs per delivery over its first 200 broadcasts
 * and ~37 over 1,000, while the bare server's few lines warm up at once: fan28, session 28).
 */
export async function fanOut(
  system: RunningSystem,
  agents: string[],
  count: number,
  rate: number,
  channel?: string,
  text = SHORT_TEXT,
): Promise<Figures> {
  const ledger = new Ledger();
  const warmUp = new Ledger();
  const readers: SseReader[] = [];
  const urls = brokers(system);
  // nchan fans out within one channel; the brokers deliver a broadcast to every agent's own inbox.
  for (const [index, agent] of agents.entries()) {
    readers.push(await subscribe(urls[index % urls.length], channel ?? agent, (_id, data) => {
      (data.startsWith(`{"p":${WARM_UP},`) ? warmUp : ledger).record(agent, data);
    }));
  }
  const connection = new Connection(other(urls, 0));
  const path = channel === undefined ? "/broadcast?from=hub" : `/broadcast?from=hub&to=${channel}`;
  const publish = async (publisher: number, into: Ledger) => {
    const start = performance.now();
    for (let seq = 0; seq < count; seq++) {
      const due = start + (seq * 1000) / rate;
      if (due > performance.now()) await sleep(due - performance.now());
      await connection.request("POST", path, message(publisher, seq, text));
    }
    await into.waitFor(count * agents.length, 15_000);
  };
  await publish(WARM_UP, warmUp);
  const cpu = await measureCpu(system, async () => {
    await publish(0, ledger);
    return ledger.delivered;
  });
  for (const reader of readers) reader.close();
  connection.close();
  // What the warm-up lost, repeated or reordered counts as much as what the measurement did.
  const measured = ledger.figures(count * agents.length);
  const warm = warmUp.figures(count * agents.length);
  return {
    ...measured,
    lost: measured.lost! + warm.lost!,
    duplicated: measured.duplicated! + warm.duplicated!,
    reordered: measured.reordered! + warm.reordered!,
    ...cpu,
    streams: agents.length,
  };
}

/**
 * Opens `count` idle streams (spread over the brokers): time to open, server memory per stream, and /status latency
 * once 1,000 are open.
 */
export async function idleStreams(system: RunningSystem, count: number, onProgress: (opened: number) => void): Promise<{ streams: Figures; status: Figures }> {
  const pids = () => system.pids();
  const urls = brokers(system);
  const before = rssBytes(pids());
  const readers: SseReader[] = [];
  let status: Figures = { note: "not reached" };
  const start = performance.now();
  let failures = 0;
  for (let opened = 0; opened < count;) {
    const batch = Math.min(200, count - opened);
    const results = await Promise.allSettled(Array.from({ length: batch }, (_, i) => {
      const reader = readSse(`${urls[(opened + i) % urls.length]}/subscribe?agent=idle${opened + i}`, () => {});
      readers.push(reader);
      return reader.opened;
    }));
    failures += results.filter((result) => result.status === "rejected" || result.value !== 200).length;
    opened += batch;
    onProgress(opened);
    if (opened === 1000 || (opened >= count && count < 1000)) {
      // Measured on idle streams: the opening burst (inboxes created, first reads) settles first, on every system.
      await sleep(1000);
      status = await statusLatency(system, opened);
    }
    if (performance.now() - start > 120_000) break;
  }
  const openSeconds = (performance.now() - start) / 1000;
  await sleep(1000);
  const after = rssBytes(pids());
  const open = readers.length - failures;
  for (const reader of readers) reader.close();
  return {
    streams: {
      streams: open,
      openSeconds,
      kibPerStream: (after - before) / 1024 / open,
      note: failures ? `${failures} of ${readers.length} failed to open` : undefined,
    },
    status,
  };
}

/** 500 sequential `/status` requests after 20 unmeasured ones (every system gets the same warm-up). */
async function statusLatency(system: RunningSystem, streams: number): Promise<Figures> {
  const connection = new Connection(system.url);
  const times: number[] = [];
  for (let i = 0; i < 520; i++) {
    const start = performance.now();
    await connection.request("GET", "/status");
    if (i >= 20) times.push(performance.now() - start);
  }
  connection.close();
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.floor(q * times.length)];
  return { streams, messages: times.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: times.at(-1) };
}

/**
 * Reconnect and resume: a stream reads the first third, drops, a third is published while it is away, and it
 * comes back with Last-Event-ID (where the system gives ids) for the rest; with several brokers it reads on the
 * first, comes back on the second, and the messages are published on the last.
 */
export async function resume(system: RunningSystem, perPhase: number): Promise<Figures> {
  const ledger = new Ledger();
  let lastId: string | undefined;
  const onEvent = (id: string | undefined, data: string) => {
    lastId = id ?? lastId;
    ledger.record("openclaw", data);
  };
  const urls = brokers(system);
  const connection = new Connection(urls.at(-1)!);
  const publish = async (from: number) => {
    for (let seq = from; seq < from + perPhase; seq++) await connection.request("POST", "/broadcast?from=hermes&to=openclaw", message(0, seq));
  };
  let reader = await subscribe(urls[0], "openclaw", onEvent);
  await publish(0);
  await ledger.waitFor(perPhase, 10_000);
  reader.close();
  await sleep(100);
  await publish(perPhase);
  reader = await subscribe(other(urls, 0), "openclaw", onEvent, lastId);
  await publish(2 * perPhase);
  await ledger.waitFor(3 * perPhase, 5_000);
  await sleep(500);
  reader.close();
  connection.close();
  const { lost, duplicated, reordered } = ledger.figures(3 * perPhase);
  return { messages: 3 * perPhase, lost, duplicated, reordered };
}
