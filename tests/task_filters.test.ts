/**
 * A filtered task listing reads what its filter needs: a task of another context is passed by on its message alone,
 * and a task listed is read from the message in hand and what became of it. Read whole first, a ListTasks for the
 * 10 tasks of one context among 1,000 read every task's message twice and its reply (3,000 messages, 2,000 reads).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { A2A_PAYLOAD_FIELD } from "../src/a2a/interop_payload.ts";
import { listTasks } from "../src/a2a/task_list.ts";
import { taskKeyPrefix } from "../src/a2a/tasks.ts";
import { Broker } from "../src/broker/broker.ts";
import { uniform } from "../src/broker/per_agent.ts";
import type { AgentName, Envelope } from "../src/message.ts";
import { SqliteStore } from "../src/store/sqlite.ts";
import { testBrokerOptions } from "./helpers/broker_options.ts";
import { tempDir } from "./helpers/cli.ts";

const hermes = "hermes" as AgentName;
const openclaw = "openclaw" as AgentName;
const TASKS = 1000;
/** Every hundredth task is of the context asked for: 10 of 1,000. */
const WANTED = "ctx-wanted";

test("a ListTasks filtered by contextId reads only the tasks of that context beyond their messages", async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const store = new SqliteStore(dir.path, "relaxed");
  const broker = await Broker.open(testBrokerOptions(store, dir.path, { maxPending: uniform(2 * TASKS) }));
  t.after(() => broker.close());
  const wanted: number[] = [];
  for (let n = 0; n < TASKS; n++) {
    const contextId = n % 100 === 0 ? WANTED : `ctx-${n}`;
    const payload = { text: `task ${n}`, [A2A_PAYLOAD_FIELD]: { messageId: `m${n}`, contextId, parts: [{ text: `task ${n}` }] } };
    const key = { idempotencyKey: `${taskKeyPrefix(openclaw)}m${n}`, keyNamesMessage: true };
    const { envelopes: [sent] } = await broker.publish(hermes, openclaw, payload, key);
    await broker.publish(openclaw, hermes, { text: `done ${n}` }, { replyTo: sent.id });
    if (contextId === WANTED) wanted.unshift(sent.id);
  }
  // Reads of the store, and the characters of stored payload they returned (a task's reply, with its outcome).
  const read = { reads: 0, chars: 0 };
  const count = (envelopes: Array<Envelope | undefined>) => {
    read.reads++;
    for (const envelope of envelopes) if (envelope !== undefined) read.chars += JSON.stringify(envelope.payload).length;
  };
  const findByKeyPrefix = store.findByKeyPrefix.bind(store);
  store.findByKeyPrefix = async (prefix, parties, beforeId, limit) => {
    const page = await findByKeyPrefix(prefix, parties, beforeId, limit);
    count(page);
    return page;
  };
  const find = store.find.bind(store);
  store.find = async (id) => {
    const found = await find(id);
    count([found]);
    return found;
  };
  const outcome = store.outcome.bind(store);
  store.outcome = async (id) => {
    const found = await outcome(id);
    count([found.reply]);
    return found;
  };
  const listed: number[] = [];
  const started = performance.now();
  for (let pageToken = "", pages = 0; pages === 0 || pageToken !== ""; pages++) {
    const page = await listTasks(broker, hermes, openclaw, { contextId: WANTED, pageSize: 100, pageToken }, "1.0", { open: "", close: "" });
    page.written();
    const { tasks, nextPageToken } = JSON.parse(String(page.body));
    listed.push(...tasks.map((task: { metadata: { interop: { id: number } } }) => task.metadata.interop.id));
    assert.ok(tasks.every((task: { contextId: string; status: { state: string } }) => task.contextId === WANTED && task.status.state === "TASK_STATE_COMPLETED"));
    pageToken = nextPageToken;
  }
  const ms = performance.now() - started;
  console.log(`ListTasks of ${WANTED} among ${TASKS}: ${read.reads} reads of the store, ${read.chars} characters, ${ms.toFixed(0)} ms`);
  assert.deepEqual(listed, wanted);
  // The key-prefix reads (10 tasks a read: 100), and what became of each of the 10 tasks listed.
  assert.ok(read.reads <= TASKS / 10 + 5 + 2 * wanted.length, `${read.reads} reads of the store`);
});
