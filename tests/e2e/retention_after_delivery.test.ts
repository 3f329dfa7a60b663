/** --retention counts from a message's delivery: one that waited longer than the period can still be replayed. */
import assert from "node:assert/strict";
import { setTimeout as delay } from "node:timers/promises";
import { test } from "node:test";
import { publish, startBroker, waitFor } from "../helpers/broker.ts";
import { runCli } from "../helpers/cli.ts";
import { openSse } from "../helpers/sse.ts";

test("a message that waited longer than --retention stays for replay a whole period after its delivery", async (t) => {
  // --pending-ttl for another agent only makes the retention sweep run every 0.5 s (else once a minute).
  const broker = await startBroker({ args: ["--retention", "2s", "--agents", "hermes,openclaw,cron", "--pending-ttl", "0,cron=1s"] });
  t.after(() => broker.cleanup());
  const store = (await (await fetch(`${broker.url}/status`)).json()).store_id;
  for (let n = 1; n <= 3; n++) await publish(broker.url, "hermes", "openclaw", { n });
  // openclaw is away for longer than the retention period: the time passing is what the test is about.
  await delay(2500);
  const stream = await openSse(`${broker.url}/subscribe?agent=openclaw`);
  const sent = await stream.take(3).finally(() => stream.close());

  // A sweep after the delivery: cron's message expiring shows it ran.
  await publish(broker.url, "hermes", "cron", { n: 0 });
  await waitFor(async () => (await (await fetch(`${broker.url}/status`)).json()).agents.cron.expired === 1 || undefined, 10_000, "a sweep");
  const resume = await openSse(`${broker.url}/subscribe?agent=openclaw`, { "last-event-id": sent[0].id!, "interop-store": store });
  try {
    assert.equal(resume.status, 200, "the reader that handled only the first gets the other two again");
    assert.deepEqual((await resume.take(2)).map((event) => JSON.parse(event.data).n), [2, 3]);
  } finally {
    resume.close();
  }
  // And a period after the delivery they go, as ever.
  await waitFor(async () => {
    const late = await fetch(`${broker.url}/subscribe?agent=openclaw`, { headers: { "last-event-id": sent[0].id!, "interop-store": store } });
    await late.body?.cancel();
    return late.status === 410 || undefined;
  }, 15_000, "the replay to expire a period after the delivery");
});

/** Leo's answer to the question `asking` put in his inbox, sent as a reply over HTTP: its id. */
async function answer(url: string, text: string): Promise<number> {
  const question = await (await fetch(`${url}/wait?agent=leo&timeout=20`)).json();
  const answered = await fetch(`${url}/broadcast?from=leo&reply_to=${question.interop.id}`, { method: "POST", body: JSON.stringify({ text }) });
  return (await answered.json()).id;
}

/** Waits for cron's message `id` to be gone (a reply to it is refused 404) a retention period after its take. */
async function removedAfterTake(url: string, id: number): Promise<void> {
  await waitFor(async () => {
    const late = await fetch(`${url}/broadcast?from=cron&reply_to=${id}`, { method: "POST", body: '{"text":"again"}' });
    await late.body?.cancel();
    return late.status === 404 || undefined;
  }, 15_000, "the reply to go a retention period after its take");
}

test("the replies an agent that only asks took go a retention period after the take, as a delivery's do", async (t) => {
  // A cron job's agent reads nothing but its asks' replies: only an in-order read moved its cursor past them, and
  // retention deletes up to the cursor, so every reply stayed for good.
  const broker = await startBroker({ args: ["--retention", "2s", "--agents", "cron,leo,tick", "--pending-ttl", "0,tick=1s"] });
  t.after(() => broker.cleanup());
  const asked = runCli(["ask", "--url", broker.url, "--from", "cron", "--to", "leo", "--timeout", "20", "disk ok?"]);
  const reply = await answer(broker.url, "yes");
  const result = await asked;
  assert.equal(result.stdout, "yes\n", result.stderr);
  const cron = async () => (await (await fetch(`${broker.url}/status`)).json()).agents.cron;
  // Still there right after the take: cron can answer it (a message to leo).
  assert.equal((await fetch(`${broker.url}/broadcast?from=cron&reply_to=${reply}`, { method: "POST", body: '{"text":"thanks"}' })).status, 200);
  await waitFor(async () => (await cron()).delivered_id === reply || undefined, 10_000, "cron's cursor to pass the reply it took");
  assert.deepEqual({ pending: (await cron()).pending, expired: (await cron()).expired }, { pending: 0, expired: 0 });
  // A period later it is gone: nothing is left to answer.
  await removedAfterTake(broker.url, reply);
});

test("a resume by id from before the replies an ask took, a retention period later, replays what came after them", async (t) => {
  // Their deletion moved the purge mark past the reader's id: 410 event_id_expired, though nothing it lacked was
  // removed, and `interop listen` then read on from the cursor, losing what its dead stream had been written.
  const broker = await startBroker({ args: ["--retention", "2s", "--agents", "cron,leo,tick", "--pending-ttl", "0,tick=1s"] });
  t.after(() => broker.cleanup());
  const store = (await (await fetch(`${broker.url}/status`)).json()).store_id;
  await publish(broker.url, "leo", "cron", { n: 1 });
  const stream = await openSse(`${broker.url}/subscribe?agent=cron`);
  const [seen] = await stream.take(1).finally(() => stream.close());
  const asking = fetch(`${broker.url}/ask?from=cron&to=leo&timeout=20`, { method: "POST", body: '{"text":"q"}' });
  const reply = await answer(broker.url, "a");
  assert.equal((await (await asking).json()).reply.interop.id, reply);
  await removedAfterTake(broker.url, reply);
  await publish(broker.url, "leo", "cron", { n: 2 });
  const resume = await openSse(`${broker.url}/subscribe?agent=cron`, { "last-event-id": seen.id!, "interop-store": store });
  try {
    assert.equal(resume.status, 200);
    assert.deepEqual((await resume.take(1)).map((event) => JSON.parse(event.data).n), [2]);
  } finally {
    resume.close();
  }
});
