/** A token made a moment ago, not yet read by the broker, is read before it is called unknown. */
import assert from "node:assert/strict";
import { mock, test } from "node:test";
import { Authenticator } from "../src/auth/authenticator.ts";
import { InteropError } from "../src/errors.ts";
import { mintToken, type TokenList, type TokenRecord } from "../src/auth/token_list.ts";
import type { AgentName } from "../src/message.ts";
import { stepWallClock } from "./helpers/hand_clock.ts";
import { fromWebRequest } from "./helpers/web_request.ts";

const hermes = "hermes" as AgentName;

/** A request to the broker with `token`. */
function withToken(token: string) {
  return fromWebRequest(new Request("http://127.0.0.1/poll?agent=hermes", { headers: { authorization: `Bearer ${token}` } }));
}

/** A failure of the token list's reads, as PostgreSQL away gives. */
const away = new InteropError("storage_unavailable", "Storage unavailable: PostgreSQL cannot be reached", { retryAfter: 1 });

/**
 * A token list in memory whose changes the broker hears of only by reading it (no notification comes); `reads` counts
 * its version reads, each answered once `gate` (default: at once) resolves, with the version as it was when asked.
 */
function silentList(gate: () => Promise<void> = () => Promise.resolve()): {
  list: TokenList;
  add(record: TokenRecord): void;
  revoke(record: TokenRecord): void;
  reads(): number;
} {
  const records: TokenRecord[] = [];
  let version = 0;
  let reads = 0;
  const list = {
    where: "memory",
    list: () => Promise.resolve([...records]),
    version: () => {
      reads++;
      const asked = version;
      return gate().then(() => asked);
    },
    changedSinceVersion: () => false,
    watch: () => Promise.resolve(),
    close: () => Promise.resolve(),
  } as unknown as TokenList;
  return {
    list,
    add: (record) => (records.push(record), version++),
    revoke: (record) => (records.splice(records.indexOf(record), 1), version++),
    reads: () => reads,
  };
}

test("a token made since the broker last read its tokens is read before the request is refused as unknown", async () => {
  const { list, add } = silentList();
  add(mintToken(hermes, false).record);
  const auth = await Authenticator.open(list);
  // Within the second the list counts as current: before, this token was 401 until the next read.
  const { record, token } = mintToken(hermes, false);
  add(record);
  const caller = await auth.identify(withToken(token));
  assert.deepEqual(caller, { agent: hermes, tokenHash: record.hash, admin: false });
  await assert.rejects(auth.identify(withToken("itk_unknown")), { code: "unauthorized" });
});

test("a flood of unknown tokens reads the token list at most once each 100 ms, not once a request", async () => {
  const { list, add, reads } = silentList();
  add(mintToken(hermes, false).record);
  const auth = await Authenticator.open(list);
  const before = reads();
  const started = Date.now();
  for (let n = 0; n < 30; n++) {
    await assert.rejects(auth.identify(withToken(`itk_unknown${n}`)), { code: "unauthorized" });
  }
  const elapsed = Date.now() - started;
  // One read each 100 ms, one each second before a request (RELOAD_EVERY_MS), and one of each at either end: a slower
  // machine only allows more. Before, it read once per unknown token: 30.
  const allowed = Math.floor(elapsed / 100) + Math.floor(elapsed / 1000) + 2;
  assert.ok(reads() - before <= allowed, `${reads() - before} reads in ${elapsed} ms (at most ${allowed})`);
  assert.ok(reads() - before >= 1);
});

test("a token made while a re-read is under way is found by the next read, not refused by that one", async () => {
  let release = () => {};
  let held = false;
  const { list, add } = silentList(() => held ? new Promise((resolve) => (release = resolve)) : Promise.resolve());
  add(mintToken(hermes, false).record);
  const auth = await Authenticator.open(list);
  held = true;
  // An unknown token's re-read asks for the version and waits; the token is made after it asked.
  const refused = assert.rejects(auth.identify(withToken("itk_unknown")), { code: "unauthorized" });
  await waitForRead(() => release);
  const { record, token } = mintToken(hermes, false);
  add(record);
  held = false;
  const identified = auth.identify(withToken(token));
  // Held past the 100 ms between unknown tokens' re-reads, so that the next one would start now: it must not take
  // this read, under way since before the token was made, for its own (the answer is the same on a slower machine).
  await new Promise((resolve) => setTimeout(resolve, 250));
  release();
  await refused;
  assert.deepEqual(await identified, { agent: hermes, tokenHash: record.hash, admin: false });
});

/** Resolves once the held version read has begun (its release is no longer the placeholder). */
async function waitForRead(current: () => () => void): Promise<void> {
  const placeholder = current();
  const deadline = Date.now() + 10_000;
  while (current() === placeholder) {
    if (Date.now() > deadline) throw new Error("no token re-read began within 10 s");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

test("a token the re-read cannot check (the list unreadable) is answered 503 storage_unavailable, not 401 as unknown", async () => {
  let failing = false;
  const { list, add } = silentList(() => failing ? Promise.reject(away) : Promise.resolve());
  add(mintToken(hermes, false).record);
  const auth = await Authenticator.open(list);
  failing = true;
  // Made a moment ago on another broker, perhaps: its client should retry, not give the token up as revoked.
  const { record, token } = mintToken(hermes, false);
  add(record);
  await assert.rejects(auth.identify(withToken(token)), { code: "storage_unavailable" });
  failing = false;
  await waitForIdentified(auth, token);
});

/** Resolves once `token` is known (the failed read is tried again a second later at most). */
async function waitForIdentified(auth: Authenticator, token: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      await auth.identify(withToken(token));
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

test("a token revoked after the wall clock was set back an hour is refused within seconds, not an hour later", async (t) => {
  const { list, add, revoke } = silentList();
  const { record, token } = mintToken(hermes, false);
  add(record);
  const auth = await Authenticator.open(list);
  await auth.identify(withToken(token));
  // The list's age is a duration, not a time of day.
  stepWallClock(t, -3_600_000);
  revoke(record);
  const started = performance.now();
  while (await auth.identify(withToken(token)).then(() => true, () => false)) {
    assert.ok(performance.now() - started < 5_000, "the revoked token still let in after 5 s");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
});

test("a watched token's revocation ends its watch at the next tick of the second-long timer, not the one after", async (t) => {
  // The tick re-read only a list a second old, and the last read had ended just under a second before: every other
  // tick read it, so a revoked token's stream lived up to two seconds.
  const { list, add, revoke } = silentList();
  const { record, token } = mintToken(hermes, false);
  add(record);
  const auth = await Authenticator.open(list);
  mock.timers.enable({ apis: ["setInterval"] });
  t.after(() => mock.timers.reset());
  let revoked = false;
  const stop = auth.watchRevocation(await auth.identify(withToken(token)), () => (revoked = true));
  t.after(stop);
  mock.timers.tick(1_000);
  await new Promise((resolve) => setImmediate(resolve));
  revoke(record);
  mock.timers.tick(1_000);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(revoked, true, "the watch outlived its token's revocation past the next tick");
});
