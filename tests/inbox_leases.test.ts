/** Leases on inboxes (InboxLeases): one peek-then-take reader at a time, and no take by anyone else meanwhile. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { InboxLeases } from "../src/broker/inbox_leases.ts";
import { InteropError } from "../src/errors.ts";
import { parseAgentName } from "../src/message.ts";

const leo = parseAgentName("leo");
const ann = parseAgentName("ann");

function leased(error: unknown, retryAfter: number): boolean {
  return error instanceof InteropError && error.code === "inbox_leased" && error.retryAfter === retryAfter;
}

test("a lease holds off other leases and takes until its own take ends it, and only on its inbox", async () => {
  let now = 0;
  const leases = new InboxLeases(() => now);
  const id = await leases.acquire(leo, 60);
  now = 20_500;
  await assert.rejects(leases.acquire(leo, 60), (error) => leased(error, 40));
  await assert.rejects(leases.take(leo, undefined, () => Promise.resolve("taken")), (error) => leased(error, 40));
  await assert.rejects(leases.take(leo, "another-id", () => Promise.resolve("taken")), (error) => leased(error, 40));
  assert.equal(await leases.take(ann, undefined, () => Promise.resolve("ann's")), "ann's");
  assert.equal(await leases.take(leo, id, () => Promise.resolve("mine")), "mine");
  // Ended by its take, even one that failed: the next reader is let in.
  const next = await leases.acquire(leo, 60);
  await assert.rejects(leases.take(leo, next, () => Promise.reject(new Error("disk"))), /disk/);
  assert.equal(await leases.take(leo, undefined, () => Promise.resolve("plain")), "plain");
});

test("a lease that expires lets the others in; its late take still ends nothing of theirs", async () => {
  let now = 0;
  const leases = new InboxLeases(() => now);
  const stale = await leases.acquire(leo, 5);
  now = 5_000;
  const fresh = await leases.acquire(leo, 5);
  assert.equal(await leases.take(leo, stale, () => Promise.resolve("late")).catch((error) => error.code), "inbox_leased");
  leases.end(leo, stale);
  await assert.rejects(leases.acquire(leo, 5), (error) => leased(error, 5));
  leases.end(leo, fresh);
  await leases.acquire(leo, 5);
});

test("a lease is granted once the takes already in progress have ended: what its reader peeks next no one takes", async () => {
  const leases = new InboxLeases(() => 0);
  const take = Promise.withResolvers<string>();
  const taking = leases.take(leo, undefined, () => take.promise);
  let granted = false;
  const acquiring = leases.acquire(leo, 60).then(() => (granted = true));
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(granted, false);
  // Held from the request on: a take that starts now is refused.
  await assert.rejects(leases.take(leo, undefined, () => Promise.resolve("late")), /Another reader is polling leo's inbox/);
  take.resolve("first");
  assert.equal(await taking, "first");
  await acquiring;
  assert.equal(granted, true);
});
