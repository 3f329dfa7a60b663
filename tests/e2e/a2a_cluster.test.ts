/**
 * The A2A hub on brokers that share a PostgreSQL database: a task's changes made through another broker (its reply,
 * a dead letter) reach the caller's stream or blocking call as they happen, not at the next keepalive or never.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { waitFor } from "../helpers/broker.ts";
import { sdkClient, taskJson, taskStateToJSON, textMessage } from "../helpers/a2a.ts";
import { brokersOnOneDatabase, sharedPostgres } from "../helpers/postgres.ts";

const cluster = sharedPostgres();

/** Without tokens an A2A caller is the agent `a2a`; bob reads and answers through the other broker. */
const AGENTS = ["--agents", "a2a,bob"];

/** Takes bob's one pending message on `url`, once it is there. */
async function takeQuestion(url: string): Promise<{ interop: { id: number } }> {
  return await waitFor(async () => (await (await fetch(`${url}/poll?agent=bob`)).json())[0], 10_000, "the question in bob's inbox");
}

/** bob's reply "answered on b" to message `id`, sent through the broker at `url`. */
async function answerOnB(url: string, id: number): Promise<void> {
  const replied = await fetch(`${url}/broadcast?from=bob&reply_to=${id}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ text: "answered on b" }),
  });
  assert.equal(replied.status, 200, await replied.text());
}

test("a task stream on one broker carries the reply bob sent through another, at once (it took the reply unheard, and a client leaving lost it)", async (t) => {
  const server = await cluster(t);
  if (server === undefined) return;
  const { brokers: [a, b] } = await brokersOnOneDatabase(t, server, 2, AGENTS);
  const client = await sdkClient(a.url, "bob", undefined);
  const events: string[] = [];
  let carried = "";
  const streamed = (async () => {
    for await (const { payload } of client.sendMessageStream(textMessage("stream me across brokers"))) {
      const value = payload!.value as { status?: { state: number } };
      events.push(`${payload!.$case}${value.status === undefined ? "" : ` ${taskStateToJSON(value.status.state as never)}`}`);
      carried += JSON.stringify(value);
    }
  })();
  const question = await takeQuestion(b.url);
  await answerOnB(b.url, question.interop.id);
  // Before: the stream saw it at its next keepalive (15 s), and had taken it from a2a's inbox meanwhile. (A stream
  // that opens slowly may first read the task already answered: then its first event is the completed task.)
  await waitFor(() => events.some((event) => event.endsWith(" TASK_STATE_COMPLETED")), 10_000, "the reply in the stream");
  await streamed;
  assert.match(carried, /answered on b/, events.join(", "));
  assert.deepEqual(await (await fetch(`${a.url}/poll?agent=a2a&peek=1`)).json(), [], "the stream took the reply: not in the inbox as well");
});

test("a blocking SendMessage on one broker answers FAILED when bob dead-letters its message through another, not after --a2a-wait", async (t) => {
  const server = await cluster(t);
  if (server === undefined) return;
  const { brokers: [a, b] } = await brokersOnOneDatabase(t, server, 2, [...AGENTS, "--a2a-wait", "120s"]);
  const client = await sdkClient(a.url, "bob", undefined, false);
  const answered = client.sendMessage(textMessage("one bob's receiver refuses"));
  const question = await takeQuestion(b.url);
  const parked = await fetch(`${b.url}/dead-letters?agent=bob`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ id: question.interop.id, reason: "410 Gone" }),
  });
  assert.equal(parked.status, 200);
  // Before: the call waited out the 120 s; the broker re-reads what it cannot hear every 5 s.
  const task = await Promise.race([
    answered.then(taskJson),
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error("no answer within 20 s")), 20_000)),
  ]);
  assert.equal(task.status.state, "TASK_STATE_FAILED");
});

test("a blocking SendMessage on one broker takes the reply bob sent through another; the caller's /wait there gets what follows, not the reply too", async (t) => {
  const server = await cluster(t);
  if (server === undefined) return;
  const { brokers: [a, b] } = await brokersOnOneDatabase(t, server, 2, AGENTS);
  const client = await sdkClient(a.url, "bob", undefined, false);
  const waited = fetch(`${b.url}/wait?agent=a2a&timeout=20`);
  const answered = client.sendMessage(textMessage("answer me across brokers"));
  const question = await takeQuestion(b.url);
  await answerOnB(b.url, question.interop.id);
  const task = await answered.then(taskJson);
  assert.equal(task.status.state, "TASK_STATE_COMPLETED");
  assert.match(JSON.stringify(task), /answered on b/);
  // Before: B's /wait took the reply (9 times in 10), so a2a had it twice: in the task and through its inbox.
  assert.equal((await fetch(`${b.url}/broadcast?from=bob&to=a2a`, { method: "POST", body: JSON.stringify({ text: "next" }) })).status, 200);
  const next = await waited;
  assert.equal(next.status, 200);
  assert.equal((await next.json()).text, "next", "B's /wait has the message after the reply");
});
