/**
 * A2A task listings read the store a few messages at a time and sum up one task at a time: the dashboard's table
 * (`GET /a2a`) read its 50 tasks and their replies all at once (150 MiB of 1 MiB messages per call: 8 calls of one
 * agent's token held /status 5.8 s and grew RSS by 340 MB), and ListTasks read 10 messages at a time whatever
 * --max-body-bytes allowed them to be.
 */
import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import { listTasks } from "../../src/a2a/task_list.ts";
import { recentTasks, taskKeyPrefix } from "../../src/a2a/tasks.ts";
import { Broker } from "../../src/broker/broker.ts";
import { uniform } from "../../src/broker/per_agent.ts";
import { messagesPerRead } from "../../src/broker/read_pages.ts";
import { type AgentName, DEFAULT_MAX_BODY_BYTES } from "../../src/message.ts";
import { SqliteStore } from "../../src/store/sqlite.ts";
import { testBrokerOptions } from "../helpers/broker_options.ts";
import { tempDir } from "../helpers/cli.ts";

const hermes = "hermes" as AgentName;
const openclaw = "openclaw" as AgentName;
const TASKS = 30;

/**
 * A broker whose store counts the most messages a task listing asked for at once, and the most reads of a task's
 * outcome (its reply) in progress at once; hermes sent openclaw TASKS A2A messages, each replied to.
 */
async function openBroker(t: TestContext, maxMessageBytes = DEFAULT_MAX_BODY_BYTES) {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const store = new SqliteStore(dir.path, "relaxed");
  const broker = await Broker.open(testBrokerOptions(store, dir.path, { maxPending: uniform(1000), maxMessageBytes }));
  t.after(() => broker.close());
  for (let n = 0; n < TASKS; n++) {
    const { envelopes: [sent] } = await broker.publish(hermes, openclaw, { text: `task ${n}` }, { idempotencyKey: `${taskKeyPrefix(openclaw)}m${n}`, keyNamesMessage: true });
    await broker.publish(openclaw, hermes, { text: `done ${n}` }, { replyTo: sent.id });
  }
  const asked = { most: 0, outcomes: 0, mostOutcomes: 0 };
  const findByKeyPrefix = store.findByKeyPrefix.bind(store);
  store.findByKeyPrefix = (prefix, parties, beforeId, limit) => {
    asked.most = Math.max(asked.most, limit);
    return findByKeyPrefix(prefix, parties, beforeId, limit);
  };
  const outcome = store.outcome.bind(store);
  store.outcome = async (id) => {
    asked.mostOutcomes = Math.max(asked.mostOutcomes, ++asked.outcomes);
    try {
      return await outcome(id);
    } finally {
      asked.outcomes--;
    }
  };
  return { broker, asked, store };
}

test("the dashboard's task table reads a few tasks at a time and one task's reply at a time", async (t) => {
  const { broker, asked } = await openBroker(t);
  for (const viewer of [hermes, "all"] as const) {
    const tasks = await recentTasks(broker, viewer, hermes);
    assert.equal(tasks.length, TASKS);
    assert.deepEqual(tasks.map((task) => task.state), Array(TASKS).fill("TASK_STATE_COMPLETED"));
    const ids = tasks.map((task) => Number(task.id.split("-")[1]));
    assert.deepEqual(ids, ids.toSorted((a, b) => b - a), "newest first, each once");
  }
  assert.ok(asked.most <= messagesPerRead(10), `a read asked for ${asked.most} messages`);
  assert.equal(asked.mostOutcomes, 1, `${asked.mostOutcomes} tasks' replies were read at once`);
});

test("a task listing reads no more messages at a time than a read may hold at --max-body-bytes each", async (t) => {
  const maxMessageBytes = 8 * 1024 * 1024;
  const { broker, asked } = await openBroker(t, maxMessageBytes);
  const around = { open: "", close: "" };
  const listed = await listTasks(broker, hermes, openclaw, { pageSize: 100 }, "1.0", around);
  listed.written();
  const { tasks, nextPageToken } = JSON.parse(String(listed.body));
  assert.equal(tasks.length, TASKS);
  assert.equal(nextPageToken, "");
  assert.ok(asked.most <= messagesPerRead(10, maxMessageBytes), `ListTasks asked for ${asked.most} messages of up to 8 MiB at once`);
  assert.equal((await recentTasks(broker, hermes, hermes)).length, TASKS);
  assert.ok(asked.most <= messagesPerRead(10, maxMessageBytes), `the task table asked for ${asked.most} messages of up to 8 MiB at once`);
});

test("task listings asked for together read within the caller's memory for answers: past four at once they are refused, reading nothing", async (t) => {
  const { broker, store } = await openBroker(t);
  let reading = 0;
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const findByKeyPrefix = store.findByKeyPrefix;
  store.findByKeyPrefix = async (...args) => {
    reading++;
    await gate;
    return await findByKeyPrefix(...args);
  };
  const around = { open: "", close: "" };
  const calls = [
    ...Array.from({ length: 4 }, () => recentTasks(broker, "all", hermes)),
    ...Array.from({ length: 4 }, () => listTasks(broker, hermes, openclaw, {}, "1.0", around).then((listed) => listed.written())),
  ];
  const refused: string[] = [];
  const settled = calls.map((call) => call.catch((error) => void refused.push(error.code)));
  for (let turn = 0; turn < 50; turn++) await new Promise((resolve) => setImmediate(resolve));
  const readingTogether = reading;
  const refusedAtOnce = [...refused];
  open();
  await Promise.all(settled);
  assert.equal(readingTogether, 4, "four read at once");
  assert.deepEqual(refusedAtOnce, Array(4).fill("too_many_requests"), "the others were refused before reading");
});

test("a task listing whose tasks take long to read lets other requests in between two of them", async (t) => {
  // A turn every read of 10 tasks: 10 tasks of 1 MiB and their replies at a time, and /status waited seconds.
  const { broker, store } = await openBroker(t);
  const outcome = store.outcome.bind(store);
  store.outcome = (id) => {
    const until = performance.now() + 15;
    while (performance.now() < until); // a task as slow to read as one of a few MiB on a loaded machine
    return outcome(id);
  };
  let turns = 0;
  let listing = true;
  const ticker = (async () => {
    while (listing) {
      await new Promise((resolve) => setTimeout(resolve, 0));
      turns++;
    }
  })();
  const tasks = await recentTasks(broker, "all", hermes);
  listing = false;
  await ticker;
  assert.equal(tasks.length, TASKS);
  assert.ok(turns >= TASKS / 2, `other work had ${turns} turns while ${TASKS} tasks were read`);
});
