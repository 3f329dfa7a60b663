import assert from "node:assert/strict";
import { test } from "node:test";
import { StreamedTask } from "../src/a2a/streamed_task.ts";

test("StreamedTask folds v1.0 events: the task, appended artifact chunks, then the final status", () => {
  const task = new StreamedTask("t1");
  const working = task.apply({ task: { id: "t1", contextId: "c", status: { state: "TASK_STATE_WORKING" } } });
  assert.deepEqual(working, { taskId: "t1", state: "TASK_STATE_WORKING", answer: undefined });
  task.apply({ artifactUpdate: { taskId: "t1", artifact: { artifactId: "a", parts: [{ text: "fort" }] } } });
  task.apply({ artifactUpdate: { taskId: "t1", artifact: { artifactId: "a", parts: [{ text: "y-two" }] }, append: true } });
  const done = task.apply({ statusUpdate: { taskId: "t1", status: { state: "TASK_STATE_COMPLETED" } } });
  assert.equal(done?.state, "TASK_STATE_COMPLETED");
  assert.deepEqual(done?.answer?.parts, [{ text: "fort" }, { text: "y-two" }]);
});

test("StreamedTask folds v0.3 events, an update that comes before the task, and a replaced artifact", () => {
  const task = new StreamedTask("t2");
  task.apply({ kind: "artifact-update", taskId: "t2", artifact: { artifactId: "a", parts: [{ kind: "text", text: "draft" }] } });
  task.apply({ kind: "artifact-update", taskId: "t2", artifact: { artifactId: "a", parts: [{ kind: "text", text: "final" }] } });
  const done = task.apply({ kind: "status-update", taskId: "t2", status: { state: "input-required" }, final: true });
  assert.deepEqual(done, {
    taskId: "t2",
    state: "TASK_STATE_INPUT_REQUIRED",
    answer: { messageId: "t2-answer", role: "ROLE_AGENT", parts: [{ text: "final" }] },
  });
});

test("StreamedTask reads a message event as the answer itself", () => {
  const answer = new StreamedTask("t1").apply({ message: { messageId: "m", role: "ROLE_AGENT", parts: [{ text: "hi" }] } });
  assert.deepEqual(answer, {
    taskId: undefined,
    state: "TASK_STATE_COMPLETED",
    answer: { messageId: "m", role: "ROLE_AGENT", parts: [{ text: "hi" }] },
  });
});

test("StreamedTask ignores events of another task: a stream cannot settle its task with another task's answer", () => {
  const task = new StreamedTask("t1");
  task.apply({ task: { id: "t1", status: { state: "TASK_STATE_WORKING" } } });
  const other = { role: "ROLE_AGENT", parts: [{ text: "meant for another asker" }] };
  const events = [
    { task: { id: "t9", status: { state: "TASK_STATE_COMPLETED", message: { messageId: "x", ...other } } } },
    { statusUpdate: { taskId: "t9", status: { state: "TASK_STATE_COMPLETED", message: { messageId: "y", ...other } } } },
    { artifactUpdate: { taskId: "t9", artifact: { artifactId: "a", parts: other.parts } } },
    { kind: "status-update", taskId: "t9", status: { state: "completed" }, final: true },
    { message: { messageId: "z", taskId: "t9", ...other } },
  ];
  for (const event of events) {
    assert.deepEqual(task.apply(event), { taskId: "t1", state: "TASK_STATE_WORKING", answer: undefined }, JSON.stringify(event));
  }
});
