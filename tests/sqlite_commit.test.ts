/**
 * A commit of the SQLite store is all or nothing, also when a statement of many rows fails part-way: those statements
 * run `OR FAIL` (no statement journal), which leaves the rows before the failure in the transaction until it is
 * rolled back whole.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { AgentName } from "../src/message.ts";
import { SqliteStore } from "../src/store/sqlite.ts";
import { tempDir } from "./helpers/cli.ts";

const hub = "hub" as AgentName;
const [first, second, third] = ["first", "second", "third"] as AgentName[];

test("SqliteStore keeps nothing of a commit whose broadcast fails at its second copy", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const store = new SqliteStore(dir.path, "strict");
  t.after(() => store.close());
  const payload = { text: "before" };
  await store.write({ messages: [first, second, third].map((to) => ({ from: hub, to, payload, createdAt: 1000 })), inboxes: [] });

  // One payload to three recipients is one statement; the second copy has no recipient (NOT NULL fails there).
  const broken = { text: "broken" };
  const recipients = [first, null as unknown as AgentName, third];
  await assert.rejects(
    store.write({
      messages: recipients.map((to) => ({ from: hub, to, payload: broken, createdAt: 2000 })),
      inboxes: [{ agent: first, deliveredId: 1 }],
    }),
  );

  for (const agent of [first, second, third]) {
    assert.deepEqual((await store.readAfter(agent, 0, 10)).map((envelope) => envelope.payload), [payload], agent);
  }
  assert.equal((await store.loadInboxes()).length, 0, "the inbox update of the failed commit was not kept either");
  const [next] = await store.write({ messages: [{ from: hub, to: first, payload: { text: "after" }, createdAt: 3000 }], inboxes: [] });
  assert.equal(next.id, 4, "the failed commit's ids are not taken");
});
