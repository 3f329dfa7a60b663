/** `interop migrate`: moves a SQLite broker's data dir into PostgreSQL, or checks that it was moved. */
import { join } from "node:path";
import { InteropError } from "../errors.ts";
import { MOVED_FILE } from "../store/moved_store.ts";
import { type MigrationCounts, type MigrationProgress, migrateSqliteToPostgres } from "../store/sqlite_to_postgres.ts";
import { redactUrl } from "../url_redaction.ts";
import { checkDatabaseUrl, parseFlags, usageError } from "./args.ts";
import { liveOwner } from "./data_dir.ts";
import type { Io } from "./io.ts";

export const HELP = `interop migrate — move a SQLite broker's store into PostgreSQL

Usage: interop migrate --from DATA_DIR --to postgres://USER@HOST:PORT/DB [--json]

Copies, in one transaction, the messages (with their ids, idempotency keys, polled
marks), inboxes and their cursors, dead letters, withdrawn messages and tokens (their
hashes, ids, admin flags; tokens stay on even if all were revoked) of the data dir into
the database, after creating or migrating its schema; new ids continue past the highest
one the SQLite broker handed out. Run again, it copies nothing: it checks that the
database holds the same messages and refuses another store's (naming the first
difference); a token revoked in the database since stays revoked. Either way it prints
the counts it copied or checked. Brokers on the database read the tokens from it, not
from DATA_DIR/tokens.json. Messages go a page at a time (5,000, or 16 Mi characters of
payload), so memory stays bounded; a store of more than one page shows its progress
on stderr at each tenth.

Stop the broker on the data dir and every broker on the database first: migrate refuses
while one runs. Then the data dir is marked moved (DATA_DIR/moved.json): a SQLite broker
on it and 'interop token' on its tokens.json refuse it, naming the database, as they
would fork the store (the same ids handed out twice, messages taken twice, a token revoked
where no broker reads it); migrate still checks it. Remove the file to take the SQLite
store back, without what was stored in the database since. A client that resumes by an
id of the SQLite store ('listen', which names the store) resumes by it on the database.

Options:
  --from DATA_DIR     the SQLite broker's data dir (holds interop.db)
  --to URL            the database (default $INTEROP_DATABASE_URL)
  -j, --json          print the counts as one JSON object
  -h, --help          show this help

Exit codes: 0 copied or checked, 1 the store failed, the database refused (no such
database, a wrong password) or holds another store, or the data dir was moved to another
database, 2 bad usage, 3 the database cannot be reached now (retry), 6 a broker holds the
data dir or runs on the database, or another process's change of DATA_DIR/tokens.json
held it for a minute (interop token).
`;

export const OPTIONS = {
  from: { type: "string" },
  to: { type: "string" },
  json: { type: "boolean", short: "j", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const;

export async function run(args: string[], io: Io): Promise<number> {
  const { values } = parseFlags("migrate", args, OPTIONS);
  if (values.help) {
    io.stdout(HELP);
    return 0;
  }
  if (values.from === undefined) throw usageError("migrate", "Missing --from DATA_DIR");
  const url = values.to ?? (io.env.INTEROP_DATABASE_URL || undefined);
  if (url === undefined) throw usageError("migrate", "Missing --to postgres://USER@HOST:PORT/DB (or set $INTEROP_DATABASE_URL)");
  checkDatabaseUrl("migrate", "--to", url);
  const dataDir = values.from;
  let counts: MigrationCounts;
  try {
    counts = await migrateSqliteToPostgres(dataDir, url, tenths(io));
  } catch (error) {
    const owner = error instanceof InteropError && error.code === "data_dir_locked" ? liveOwner(dataDir) : undefined;
    if (owner === undefined) throw error;
    throw new InteropError(
      "data_dir_locked",
      `Data dir ${dataDir} is in use by the interop broker with pid ${owner.pid} on port ${owner.port}: stop it first`,
      { cause: error },
    );
  }
  if (values.json) {
    io.stdout(JSON.stringify({ from: dataDir, to: redactUrl(url), ...counts }) + "\n");
    return 0;
  }
  io.stdout(
    `${counts.action === "copied" ? "copied" : "checked (already there, nothing copied)"} ${dataDir} into ${redactUrl(url)}: ` +
      `${counts.messages} messages, ${counts.inboxes} inboxes, ${counts.dead_letters} dead letters, ${counts.keys} idempotency keys, ` +
      `${counts.withdrawn} withdrawn, highest id ${counts.highest_id}, ${counts.tokens} tokens ` +
      `(${counts.tokens_copied} copied; brokers on the database read their tokens from it); ${dataDir} is marked moved: ` +
      `a SQLite broker and interop token refuse it (remove ${join(dataDir, MOVED_FILE)} to take it back)\n`,
  );
  return 0;
}

/**
 * Progress on stderr each time another tenth of the messages is done (at most nine lines, none for a store of one
 * page): enough to see a long copy move, never a line per page of a store of millions.
 */
function tenths(io: Io): MigrationProgress {
  let shown = 0;
  return (action, done, total) => {
    const tenth = Math.floor((done * 10) / total);
    if (done === total || tenth <= shown) return;
    shown = tenth;
    io.stderr(`interop migrate: ${action} messages, ${done} of ${total} (${Math.floor((done * 100) / total)} %)\n`);
  };
}
