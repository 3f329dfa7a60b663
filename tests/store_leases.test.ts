/** StoreLeases (a shared store's inbox leases): a failed take ends the holder's lease, also when PostgreSQL is down. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { StoreLeases } from "../src/broker/store_leases.ts";
import { InteropError } from "../src/errors.ts";
import type { AgentName } from "../src/message.ts";
import type { SharedInboxes } from "../src/store/store.ts";

const openclaw = "openclaw" as AgentName;

function leases(): { leases: StoreLeases; ended: string[] } {
  const ended: string[] = [];
  const shared = {
    endLease: (_agent: AgentName, id: string) => {
      ended.push(id);
      return Promise.resolve();
    },
  } as unknown as SharedInboxes;
  return { leases: new StoreLeases(shared, () => Promise.resolve(), new AbortController().signal), ended };
}

test("a take under a lease that failed ends the lease, letting the next reader in", async () => {
  const { leases: store, ended } = leases();
  const failed = new InteropError("storage_failed", "Storage failed to take messages: disk I/O error");
  await assert.rejects(store.take(openclaw, "lease-1", () => Promise.reject(failed)), failed);
  assert.deepEqual(ended, ["lease-1"]);
});

test("a lease whose end met an outage is ended once the store is back, rather than holding the inbox for its length", async () => {
  const ends: string[] = [];
  const { promise: endedAgain, resolve } = Promise.withResolvers<void>();
  const shared = {
    endLease: (_agent: AgentName, id: string) => {
      ends.push(id);
      if (ends.length === 1) return Promise.reject(new InteropError("storage_unavailable", "Storage unavailable; retry shortly"));
      resolve();
      return Promise.resolve();
    },
  } as unknown as SharedInboxes;
  // A leased wait whose look failed ends the lease it took (leased_wait.ts), as a failed take does: PostgreSQL went
  // away in between.
  new StoreLeases(shared, () => Promise.resolve(), new AbortController().signal).end(openclaw, "lease-1");
  const bound = AbortSignal.timeout(10_000);
  await Promise.race([endedAgain, new Promise((_, reject) => bound.addEventListener("abort", () => reject(new Error("never tried again"))))]);
  assert.deepEqual(ends, ["lease-1", "lease-1"]);
});

test("a lease's end that keeps meeting an outage is given up when the broker stops, holding no timer", async () => {
  const tries: number[] = [];
  const shared = {
    endLease: () => {
      tries.push(performance.now());
      return Promise.reject(new InteropError("storage_unavailable", "The store is closed"));
    },
  } as unknown as SharedInboxes;
  const stopping = new AbortController();
  new StoreLeases(shared, () => Promise.resolve(), stopping.signal).end(openclaw, "lease-1");
  await new Promise((resolve) => setTimeout(resolve, 50));
  stopping.abort();
  // Past the first retry's delay (250 ms): a retry after the stop would show here.
  await new Promise((resolve) => setTimeout(resolve, 600));
  assert.equal(tries.length, 1, "not tried again once the broker stopped");
});

for (const renewing of [undefined, "lease-held"]) {
  test(`a grant${renewing === undefined ? "" : " renewing a lease"} that met an outage ends the lease it may have committed, and none other`, async () => {
    // The connection broke after the grant's COMMIT, before its answer: the lease holds the inbox under the id the
    // grant asked for, which no client was told. A renewal's own lease is its holder's, who takes under it.
    const asked: Array<string | undefined> = [];
    const ended: string[] = [];
    const { promise: endedOnce, resolve } = Promise.withResolvers<void>();
    const shared = {
      lease: (_agent: AgentName, _seconds: number, _renewing: string | undefined, id: string | undefined) => {
        asked.push(id);
        return Promise.reject(new InteropError("storage_unavailable", "Storage unavailable: the connection to PostgreSQL broke"));
      },
      endLease: (_agent: AgentName, id: string) => {
        ended.push(id);
        resolve();
        return Promise.resolve();
      },
    } as unknown as SharedInboxes;
    const store = new StoreLeases(shared, () => Promise.resolve(), new AbortController().signal);
    await assert.rejects(store.acquire(openclaw, 30, renewing), { code: "storage_unavailable" });
    const bound = AbortSignal.timeout(10_000);
    await Promise.race([endedOnce, new Promise((_, reject) => bound.addEventListener("abort", () => reject(new Error("never ended"))))]);
    assert.equal(asked.length, 1);
    assert.equal(typeof asked[0], "string");
    assert.notEqual(asked[0], renewing);
    assert.deepEqual(ended, [asked[0]], "the lease the grant asked for is ended, by its id alone");
  });
}

test("a grant refused for another reader's lease ends nothing", async () => {
  const ended: string[] = [];
  const shared = {
    lease: () => Promise.reject(new InteropError("inbox_leased", "openclaw's inbox is leased")),
    endLease: (_agent: AgentName, id: string) => {
      ended.push(id);
      return Promise.resolve();
    },
  } as unknown as SharedInboxes;
  const store = new StoreLeases(shared, () => Promise.resolve(), new AbortController().signal);
  await assert.rejects(store.acquire(openclaw, 30), { code: "inbox_leased" });
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.deepEqual(ended, []);
});
