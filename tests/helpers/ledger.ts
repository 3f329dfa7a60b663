/** A publishers' ledger: what the broker acknowledged, checked against what consumers wrote. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

/** What every publisher sent: key ("publisher:seq") → acknowledged id, and the keys sent without an answer. */
export class Ledger {
  readonly acked = new Map<string, number>();
  /** Sent, but the broker died before answering: each may or may not be stored. */
  readonly unanswered = new Set<string>();
}

export interface Delivery {
  key: string;
  id: number;
}

/** Publishes numbered messages from one agent to another into a shared ledger. */
export class Publisher {
  #ledger: Ledger;
  #name: string;
  #url: () => string;
  #from: string;
  #to: string;
  #nextSeq = 1;

  constructor(ledger: Ledger, name: string, url: () => string, from: string, to: string) {
    this.#ledger = ledger;
    this.#name = name;
    this.#url = url;
    this.#from = from;
    this.#to = to;
  }

  /** Sends until `count` messages are acknowledged; a failed send is never retried (that would duplicate). */
  async publish(count: number): Promise<void> {
    let acked = 0;
    await this.publishWhile(() => acked < count, () => acked++);
  }

  /** Sends until `deadline` (ms since the epoch). */
  async publishUntil(deadline: number): Promise<void> {
    await this.publishWhile(() => Date.now() < deadline);
  }

  /** Sends while `more()` says so; `onAck` is called after each acknowledged message. */
  async publishWhile(more: () => boolean, onAck: () => void = () => {}): Promise<void> {
    while (more()) {
      const key = `${this.#name}:${this.#nextSeq++}`;
      try {
        const response = await fetch(`${this.#url()}/broadcast?from=${this.#from}&to=${this.#to}`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ key, text: `message ${key}` }),
          signal: AbortSignal.timeout(5000),
        });
        if (response.status !== 200) throw new Error(`HTTP ${response.status}: ${await response.text()}`);
        this.#ledger.acked.set(key, (await response.json()).id);
        onAck();
      } catch {
        this.#ledger.unanswered.add(key);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  }
}

/** Parses a consumer's JSON lines into deliveries, in the order written. */
export function readDeliveries(text: string): Delivery[] {
  return text.split("\n").filter((line) => line !== "").map((line) => {
    const message = JSON.parse(line);
    return { key: message.key, id: message.interop.id };
  });
}

/**
 * The deliveries a consumer wrote to `path` so far, read while it may be writing: a last line not yet ended is left
 * for the next read (parsed, it failed a test with "Unterminated string in JSON").
 */
export function readDeliveriesFile(path: string): Delivery[] {
  try {
    const text = readFileSync(path, "utf8");
    return readDeliveries(text.slice(0, text.lastIndexOf("\n") + 1));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
}

/** Whether every acknowledged message is among the deliveries (unanswered ones may be there too). */
export function allAckedDelivered(ledger: Ledger, delivered: Delivery[]): boolean {
  const seen = new Set(delivered.map((delivery) => delivery.key));
  return [...ledger.acked.keys()].every((key) => seen.has(key));
}

/**
 * Every acknowledged message delivered exactly once, in order; anything else delivered was sent without an
 * answer (stored just before a crash). Returns the counts for the test's log.
 */
export function checkLedger(ledger: Ledger, delivered: Delivery[]) {
  const ids = delivered.map((delivery) => delivery.id);
  for (let index = 1; index < ids.length; index++) {
    assert.ok(ids[index] > ids[index - 1], `out of order or repeated at ${index}: ${ids[index - 1]} then ${ids[index]}`);
  }
  const seen = new Set(delivered.map((delivery) => delivery.key));
  const missing = [...ledger.acked.keys()].filter((key) => !seen.has(key));
  assert.deepEqual(missing, [], "acknowledged messages missing from the consumer");
  for (const { key, id } of delivered) {
    if (ledger.acked.has(key)) assert.equal(id, ledger.acked.get(key), `${key} has the id the broker acknowledged`);
    else assert.ok(ledger.unanswered.has(key), `${key} was delivered but never sent`);
  }
  return { acked: ledger.acked.size, delivered: delivered.length, unanswered: ledger.unanswered.size };
}
