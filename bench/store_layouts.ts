/**
 * A broadcast's writes in the SQLite store, layout against layout, on raw `node:sqlite` with SqliteStore's pragmas:
 * CPU per broadcast of one message to N recipients, each committed with the previous broadcast's N stream cursors,
 * as the broker's fan-out commits them. The layouts run in turn, each on a new file, for a few rounds:
 *
 *   node bench/store_layouts.ts                          # 100 recipients, 2,000 broadcasts per run, 3 rounds
 *   deno run -A bench/store_layouts.ts --durability relaxed
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { DatabaseSync } from "node:sqlite";
import { parseArgs } from "node:util";
import type { AgentName } from "../src/message.ts";
import { SqliteStore } from "../src/store/sqlite.ts";

const { values } = parseArgs({
  options: {
    recipients: { type: "string", default: "100" },
    broadcasts: { type: "string", default: "2000" },
    rounds: { type: "string", default: "3" },
    durability: { type: "string", default: "strict" },
    only: { type: "string" },
    "index-lag": { type: "string", default: "4096" },
  },
});
const recipientCount = Number(values.recipients);
const broadcasts = Number(values.broadcasts);
const rounds = Number(values.rounds);
/** SqliteStore's INDEX_LAG unless told. */
const INDEX_LAG = Number(values["index-lag"]);
const recipients = Array.from({ length: recipientCount }, (_, i) => `agent${i}`);
const payload = JSON.stringify({ text: "benchmark message" });

interface Layout {
  schema: string;
  /** Writes one broadcast (in the open transaction); `cursors` are the last one's {agent: id}. Returns its last id. */
  prepare(db: DatabaseSync): (cursors: string | undefined) => number;
}

const INBOXES = `CREATE TABLE inboxes (agent TEXT PRIMARY KEY, delivered_id INTEGER NOT NULL DEFAULT 0,
  purged_id INTEGER NOT NULL DEFAULT 0, last_seen INTEGER, expired INTEGER NOT NULL DEFAULT 0, replay_after INTEGER);`;
const ADVANCE = `INSERT OR FAIL INTO inboxes (agent, delivered_id) SELECT key, value FROM json_each(?) WHERE true
  ON CONFLICT (agent) DO UPDATE SET delivered_id = max(delivered_id, excluded.delivered_id)`;
const MESSAGES =
  `CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, recipient TEXT NOT NULL, sender TEXT NOT NULL,
  created_at INTEGER NOT NULL, payload TEXT NOT NULL, polled INTEGER NOT NULL DEFAULT 0, reply_to INTEGER,
  conversation INTEGER, hops INTEGER, idempotency_key TEXT, indexed INTEGER NOT NULL DEFAULT 1);
CREATE INDEX messages_by_inbox_indexed ON messages (recipient, id) WHERE indexed = 1;
CREATE INDEX messages_by_key ON messages (sender, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX messages_by_reply ON messages (reply_to) WHERE reply_to IS NOT NULL;
CREATE TABLE shared_payloads (first_id INTEGER PRIMARY KEY, copies INTEGER NOT NULL, payload TEXT NOT NULL);`;

/** Schema 4, as SqliteStore writes it: a row per copy, the payload once, the copies indexed every INDEX_LAG rows. */
function copyRows(withCursors: boolean, withJoin = true): Layout {
  return {
    schema: MESSAGES + INBOXES,
    prepare(db) {
      const insert = db.prepare(
        `INSERT OR FAIL INTO messages (sender, created_at, payload, reply_to, conversation, hops,
        idempotency_key, recipient, indexed) SELECT ?, ?, '', ?, ?, ?, ?, value, 0 FROM json_each(?) ORDER BY key`,
      );
      const shared = db.prepare("INSERT OR FAIL INTO shared_payloads (first_id, copies, payload) VALUES (?, ?, ?)");
      const advance = db.prepare(ADVANCE);
      const join = db.prepare("UPDATE OR FAIL messages SET indexed = 1 WHERE id > ?");
      const list = JSON.stringify(recipients);
      let indexedUpTo = 0;
      return (cursors) => {
        const last = Number(insert.run("hub", Date.now(), null, null, null, null, list).lastInsertRowid);
        shared.run(last - recipientCount + 1, recipientCount, payload);
        if (withCursors && cursors) advance.run(cursors);
        if (withJoin && last - indexedUpTo >= INDEX_LAG) {
          join.run(indexedUpTo);
          indexedUpTo = last;
        }
        return last;
      };
    },
  };
}

/**
 * Schema 4's rows without the `indexed` column: the lagged join inserts the tail into an index table of its own
 * instead of rewriting each row to bring it under the partial index.
 */
function indexTable(order: string): Layout {
  return {
    schema: MESSAGES.replace(
      "CREATE INDEX messages_by_inbox_indexed ON messages (recipient, id) WHERE indexed = 1;",
      "CREATE TABLE inbox_index (recipient TEXT NOT NULL, id INTEGER NOT NULL, PRIMARY KEY (recipient, id)) WITHOUT ROWID;",
    ) +
      INBOXES,
    prepare(db) {
      const insert = db.prepare(
        `INSERT OR FAIL INTO messages (sender, created_at, payload, reply_to, conversation, hops,
        idempotency_key, recipient) SELECT ?, ?, '', ?, ?, ?, ?, value FROM json_each(?) ORDER BY key`,
      );
      const shared = db.prepare("INSERT OR FAIL INTO shared_payloads (first_id, copies, payload) VALUES (?, ?, ?)");
      const advance = db.prepare(ADVANCE);
      const join = db.prepare(
        "INSERT OR FAIL INTO inbox_index (recipient, id) SELECT recipient, id FROM messages WHERE id > ? " + order,
      );
      const list = JSON.stringify(recipients);
      let indexedUpTo = 0;
      return (cursors) => {
        const last = Number(insert.run("hub", Date.now(), null, null, null, null, list).lastInsertRowid);
        shared.run(last - recipientCount + 1, recipientCount, payload);
        if (cursors) advance.run(cursors);
        if (last - indexedUpTo >= INDEX_LAG) {
          join.run(indexedUpTo);
          indexedUpTo = last;
        }
        return last;
      };
    },
  };
}

/** A copy row of the ids alone (id, recipient, polled), the broadcast's fields once, the same lagged index. */
function narrowRows(): Layout {
  return {
    schema: `CREATE TABLE copies (id INTEGER PRIMARY KEY, recipient TEXT NOT NULL, polled INTEGER NOT NULL DEFAULT 0,
        indexed INTEGER NOT NULL DEFAULT 1);
      CREATE INDEX copies_by_inbox ON copies (recipient, id) WHERE indexed = 1;
      CREATE TABLE broadcasts (first_id INTEGER PRIMARY KEY, copies INTEGER NOT NULL, sender TEXT NOT NULL,
        created_at INTEGER NOT NULL, payload TEXT NOT NULL, reply_to INTEGER, conversation INTEGER, hops INTEGER,
        idempotency_key TEXT);` + INBOXES,
    prepare(db) {
      const insert = db.prepare(
        "INSERT OR FAIL INTO copies (id, recipient, indexed) SELECT ? + key, value, 0 FROM json_each(?) ORDER BY key",
      );
      const row = db.prepare(`INSERT OR FAIL INTO broadcasts (first_id, copies, sender, created_at, payload)
        VALUES (?, ?, ?, ?, ?)`);
      const advance = db.prepare(ADVANCE);
      const join = db.prepare("UPDATE OR FAIL copies SET indexed = 1 WHERE id > ?");
      const list = JSON.stringify(recipients);
      let next = 1;
      let indexedUpTo = 0;
      return (cursors) => {
        insert.run(next, list);
        row.run(next, recipientCount, "hub", Date.now(), payload);
        if (cursors) advance.run(cursors);
        next += recipientCount;
        const last = next - 1;
        if (last - indexedUpTo >= INDEX_LAG) {
          join.run(indexedUpTo);
          indexedUpTo = last;
        }
        return last;
      };
    },
  };
}

/** The broadcast as one row (its recipients a JSON array, copy i's id first_id + i); no row per copy. */
function oneRow(cursors: "rows" | "none" | "blob"): Layout {
  return {
    schema: `CREATE TABLE broadcasts (first_id INTEGER PRIMARY KEY, copies INTEGER NOT NULL, recipients TEXT NOT NULL,
        sender TEXT NOT NULL, created_at INTEGER NOT NULL, payload TEXT NOT NULL, reply_to INTEGER,
        conversation INTEGER, hops INTEGER, idempotency_key TEXT);
      CREATE TABLE cursor_sets (singleton INTEGER PRIMARY KEY, cursors TEXT NOT NULL);` + INBOXES,
    prepare(db) {
      const row = db.prepare(`INSERT OR FAIL INTO broadcasts (first_id, copies, recipients, sender, created_at, payload)
        VALUES (?, ?, ?, ?, ?, ?)`);
      const advance = db.prepare(ADVANCE);
      const blob = db.prepare("INSERT OR REPLACE INTO cursor_sets (singleton, cursors) VALUES (1, ?)");
      const list = JSON.stringify(recipients);
      let next = 1;
      return (cursorsJson) => {
        row.run(next, recipientCount, list, "hub", Date.now(), payload);
        if (cursorsJson && cursors === "rows") advance.run(cursorsJson);
        if (cursorsJson && cursors === "blob") blob.run(cursorsJson);
        next += recipientCount;
        return next - 1;
      };
    },
  };
}

const layouts: Record<string, Layout> = {
  "today (copy rows + cursors)": copyRows(true),
  "copy rows, no cursors": copyRows(false),
  "copy rows + cursors, no index join": copyRows(true, false),
  "copy rows + cursors, index table": indexTable(""),
  "copy rows + cursors, index table sorted": indexTable("ORDER BY recipient, id"),
  "narrow copy rows + cursors": narrowRows(),
  "one row + cursor rows": oneRow("rows"),
  "one row + cursors as one row": oneRow("blob"),
  "one row, no cursors": oneRow("none"),
};

function run(layout: Layout): number {
  const dir = mkdtempSync(join(tmpdir(), "interop-layouts-"));
  const db = new DatabaseSync(join(dir, "interop.db"), { timeout: 0 });
  try {
    db.exec(`PRAGMA locking_mode = EXCLUSIVE; PRAGMA journal_mode = WAL;
      PRAGMA synchronous = ${values.durability === "strict" ? "FULL" : "NORMAL"}; PRAGMA temp_store = MEMORY;`);
    db.exec(layout.schema);
    const write = layout.prepare(db);
    let cursors: string | undefined;
    const broadcast = () => {
      db.exec("BEGIN IMMEDIATE");
      const last = write(cursors);
      db.exec("COMMIT");
      const next: Record<string, number> = {};
      recipients.forEach((agent, i) => next[agent] = last - recipientCount + 1 + i);
      cursors = JSON.stringify(next);
    };
    for (let i = 0; i < 200; i++) broadcast();
    const start = process.cpuUsage();
    for (let i = 0; i < broadcasts; i++) broadcast();
    const used = process.cpuUsage(start);
    return (used.user + used.system) / broadcasts;
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The same through `SqliteStore.write`, as the broker commits a broadcast: its JavaScript around the SQL included. */
async function runStore(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "interop-layouts-"));
  const store = new SqliteStore(dir, values.durability === "strict" ? "strict" : "relaxed");
  try {
    let cursors: Array<{ agent: AgentName; deliveredId: number }> = [];
    const broadcast = async () => {
      const createdAt = Date.now();
      const message = { text: "benchmark message" };
      const stored = await store.write({
        messages: recipients.map((to) => ({
          from: "hub" as AgentName,
          to: to as AgentName,
          payload: message,
          createdAt,
        })),
        inboxes: cursors,
      });
      cursors = stored.map(({ to, id }) => ({ agent: to, deliveredId: id }));
    };
    for (let i = 0; i < 200; i++) await broadcast();
    const start = process.cpuUsage();
    for (let i = 0; i < broadcasts; i++) await broadcast();
    const used = process.cpuUsage(start);
    return (used.user + used.system) / broadcasts;
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const STORE = "SqliteStore.write (today)";
const runtime = "Deno" in globalThis ? "deno" : "node";
const names = [STORE, ...Object.keys(layouts)].filter((name) =>
  values.only === undefined || name.includes(values.only)
);
const results = new Map<string, number[]>(names.map((name) => [name, []]));
for (let round = 0; round < rounds; round++) {
  for (const name of round % 2 === 0 ? names : [...names].reverse()) {
    results.get(name)!.push(name === STORE ? await runStore() : run(layouts[name]));
  }
}
console.log(`${runtime}, ${values.durability}, ${broadcasts} broadcasts to ${recipientCount}, CPU µs per broadcast:`);
for (const [name, figures] of results) {
  console.log(`  ${name.padEnd(40)} ${figures.map((f) => f.toFixed(0)).join(" / ")}`);
}
