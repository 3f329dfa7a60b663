/** `interop token`: create, list and revoke the broker's tokens (stored as hashes in the data dir or the database). */
import { realpathSync } from "node:fs";
import { resolve } from "node:path";
import { TokenFile } from "../auth/token_file.ts";
import type { TokenList } from "../auth/token_list.ts";
import { defaultDataDir } from "../paths.ts";
import { refuseIfMoved } from "../store/moved_store.ts";
import { PostgresTokens } from "../store/postgres_tokens.ts";
import { agentFlag, brokerUrl, checkDatabaseUrl, brokerUrls, parseFlags, readSecret, usageError } from "./args.ts";
import { isEveryAddress, reachingHost } from "./bind_host.ts";
import { liveOwner, makeDataDir } from "./data_dir.ts";
import { oneOf } from "./commands.ts";
import { OPTIONS as SERVE_OPTIONS } from "./serve.ts";
import { tokenStore } from "./serve_config.ts";
import type { Io } from "./io.ts";
import { describeCause } from "../client/fetch_failures.ts";
import { authorizationHeader, splitCredentials } from "../client/url_credentials.ts";
import { redactUrl } from "../url_redaction.ts";

export const HELP = `interop token — the broker's access tokens

Usage: interop token create -a AGENT [--admin] [--data-dir DIR | --database-url URL] [--json]
       interop token list [--data-dir DIR | --database-url URL] [--json]
       interop token revoke (--id ID | -a AGENT) [--data-dir DIR | --database-url URL] [--json]

Once a data dir has a token, the broker serving it requires one on every request
(Authorization: Bearer TOKEN, or ?token= for clients that cannot set headers; the
bare /status liveness answer stays public), and a token acts only as its agent: it
sends as that agent and reads only that agent's inbox. A new token works at once, a
revoked one is refused from the next request (what it opened ends within a second),
without restarting the broker; a first 'create' returns once the broker serving the
data dir requires tokens (a second at most). An --admin token (for the
operator: the dashboard, /metrics) may act as any agent and watch all traffic.

Revoking the last token does not turn tokens off: every request then gets 401 until a
new one is created. To go back to no tokens, stop the broker and delete DIR/tokens.json.

Brokers on PostgreSQL (serve --database-url) read their tokens from the database, not
from a file: with --database-url (or $INTEROP_DATABASE_URL) these commands work on its
interop_tokens table, no broker needed, and a change reaches every broker on it within a
second (a new token at once). Tokens stay on once the database had one; to go back to no
tokens, stop every broker and run:
DELETE FROM interop_tokens; UPDATE interop_store SET tokens_version = 0.

'create' prints the token once, on stdout; only its SHA-256 hash is stored
(DIR/tokens.json, mode 600, named on stderr). Clients take it from $INTEROP_TOKEN or
--token-file. A token works only with the broker serving its data dir: 'create' and
'revoke' refuse a data dir a running broker serves when $INTEROP_URL names another
broker (unless --data-dir names it), and warn when no broker serves it and the one at
$INTEROP_URL (else 127.0.0.1:18900) serves another.

Options:
  -a, --agent AGENT   the agent the token acts as (create), or whose tokens to revoke
  --admin             create an operator token (default agent name: admin)
  --id ID             the token to revoke (see list)
  --data-dir DIR      the broker's data dir (default as for 'interop serve')
  --database-url URL  the brokers' PostgreSQL database instead: postgres://USER@HOST:PORT/DB
                      (default $INTEROP_DATABASE_URL)
  --config FILE       take --data-dir or --database-url from serve's config file (default
                      $INTEROP_CONFIG); a flag wins over the environment, which wins over it
  -j, --json          print JSON: the new token with its id and file (create), the
                      tokens (list), what was revoked (revoke)
  -h, --help          show this help

Changes made at once take turns (DIR/tokens.json.lock), none lost; one that waited a
minute for another process's change gives up.

Exit codes: 0 done, 2 bad usage or nothing matched (or a data dir interop migrate moved),
1 a data dir it cannot create or write, or a database that refused (no such database, a
wrong password), 3 a database it cannot reach now (retry), 6 it waited a minute for other
processes' changes of DIR/tokens.json (the error names the lock and its holder).
`;

export const WORDS = ["create", "list", "revoke"] as const;

/** How long `create` waits for the broker serving the data dir to require tokens (it reads a first one within a second). */
const TOKENS_ON_WAIT_MS = 3000;

export const OPTIONS = {
  agent: { type: "string", short: "a" },
  id: { type: "string" },
  "data-dir": { type: "string" },
  "database-url": { type: "string" },
  config: { type: "string" },
  json: { type: "boolean", short: "j", default: false },
  admin: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const;

export async function run(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseFlags("token", args, OPTIONS, true);
  if (values.help) {
    io.stdout(HELP);
    return 0;
  }
  const [action] = positionals;
  if (action !== "create" && action !== "list" && action !== "revoke") throw usageError("token", `Say what to do: ${oneOf(WORDS)}`);
  if (action === "revoke" && values.id === undefined && values.agent === undefined) {
    throw usageError("token", "Say which: --id ID or --agent AGENT");
  }
  const agent = action === "create" ? agentFlag("token", "--agent", values.agent ?? (values.admin ? "admin" : undefined)) : undefined;
  const place = tokenStore({ dataDir: values["data-dir"], databaseUrl: values["database-url"], config: values.config }, io.env, SERVE_OPTIONS);
  const databaseUrl = place !== undefined && "databaseUrl" in place ? place.databaseUrl : undefined;
  if (databaseUrl !== undefined) checkDatabaseUrl("token", "--database-url", databaseUrl);
  const dataDir = place !== undefined && "dataDir" in place ? place.dataDir : defaultDataDir(io.env);
  // Its brokers read the database's tokens now: a change of the file would reach none of them.
  if (databaseUrl === undefined) refuseIfMoved(dataDir, `${action} tokens`);
  if (databaseUrl === undefined && action !== "list") {
    // A data dir named on the command line is the one meant, whichever broker $INTEROP_URL names.
    if (values["data-dir"] === undefined) refuseIfAnotherBrokerNamed(dataDir, io.env);
    makeDataDir(dataDir);
  }
  const tokens: TokenList = databaseUrl === undefined ? new TokenFile(dataDir) : await PostgresTokens.open(databaseUrl);
  try {
    if (action === "create") {
      const { record, token } = await tokens.create(agent!, values.admin);
      io.stderr(`created ${record.admin ? "admin " : ""}${record.id} for ${record.agent} in ${tokens.where}; it is shown once, keep it safe:\n`);
      const where = databaseUrl === undefined ? { file: tokens.where } : { database: tokens.where };
      const created = { id: record.id, agent: record.agent, admin: record.admin === true, ...where, token };
      if (databaseUrl === undefined) await untilTokensRequired(dataDir, io);
      io.stdout(values.json ? JSON.stringify(created) + "\n" : `${token}\n`);
    } else if (action === "list") {
      const listed = (await tokens.list()).map(({ id, agent, created_at, admin }) => ({ id, agent, created_at, admin: admin === true }));
      const line = (t: (typeof listed)[number]) => `${t.id}  ${t.agent}${t.admin ? " (admin)" : ""}  ${t.created_at}\n`;
      io.stdout(values.json ? JSON.stringify(listed) + "\n" : listed.map(line).join(""));
      // An empty table alone reads as a failure (or a wrong data dir): say where it looked and how to make one.
      if (listed.length === 0 && !values.json) io.stderr(`no tokens in ${tokens.where}; 'interop token create --agent NAME' makes one\n`);
    } else {
      const removed = (await tokens.revoke({ id: values.id, agent: values.agent })).map(({ id, agent }) => ({ id, agent }));
      if (removed.length === 0) throw usageError("token", `No token matched in ${tokens.where}`);
      io.stdout(values.json ? JSON.stringify(removed) + "\n" : removed.map((record) => `revoked ${record.id} (${record.agent})\n`).join(""));
      if ((await tokens.list()).length === 0) {
        io.stderr("no tokens left: the broker still requires one, so every request gets 401 until 'interop token create' makes one\n");
      }
    }
  } finally {
    await tokens.close();
  }
  // A database's brokers all read its tokens: only a data dir can be the wrong one.
  if (databaseUrl === undefined && action !== "list") await warnIfServedElsewhere(dataDir, io);
  return 0;
}

/**
 * Refuses to change the tokens of a data dir a running broker serves while $INTEROP_URL names other brokers: the
 * operator means those, and the first token would make this one answer 401 to every client it has. Without
 * $INTEROP_URL no broker was named, so the one serving the data dir is the one meant.
 */
function refuseIfAnotherBrokerNamed(dataDir: string, env: Record<string, string | undefined>): void {
  const owner = liveOwner(dataDir);
  if (owner === undefined || !env.INTEROP_URL) return;
  const urls = brokerUrls("token", undefined, env);
  // By port, and by host where both name one: a broker bound to every address is reached by any of this host's (its
  // LAN address too), a loopback URL reaches one bound to loopback.
  const everywhere = isEveryAddress(owner.host);
  const local = (host: string) => host === "localhost" || host === "[::1]" || host === "::1" || host.startsWith("127.");
  const isOwner = (url: URL) =>
    Number(url.port || 80) === owner.port && (everywhere || url.hostname === owner.host || (local(url.hostname) && local(owner.host)));
  if (urls.some((url) => isOwner(new URL(url)))) return;
  throw usageError(
    "token",
    `${dataDir} is the data dir of the broker on ${owner.host}:${owner.port} (pid ${owner.pid}), not of $INTEROP_URL's ` +
      `${urls.join(",")}: tokens changed here reach only that broker (a first token makes it refuse every client ` +
      "without one); pass the --data-dir of the broker you mean (or unset INTEROP_URL to change that broker's tokens)",
  );
}

/**
 * Returns once the broker serving `dataDir`, if one does, requires tokens (its bare `/status` shows no details): it
 * reads a first token within a second, and until then served requests without one (they took messages 0.1-0.5 s
 * after `create` returned). Warns if it does not answer so within TOKENS_ON_WAIT_MS (stopped with SIGSTOP, say).
 */
async function untilTokensRequired(dataDir: string, io: Io): Promise<void> {
  const owner = liveOwner(dataDir);
  if (owner === undefined) return;
  const host = reachingHost(owner.host);
  const deadline = performance.now() + TOKENS_ON_WAIT_MS;
  while (performance.now() < deadline) {
    try {
      const response = await fetch(`http://${host}:${owner.port}/status`, { signal: AbortSignal.timeout(1000) });
      const status = await response.json();
      if (status.service === "interop" && status.agents === undefined) return;
    } catch (error) {
      // Nothing listens there: the owner file's pid is another process now (a broker killed, its pid reused).
      if (describeCause(error) === "ECONNREFUSED") return;
      // Not answering this moment (stopped with SIGSTOP, swapping): asked again until the deadline.
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  io.stderr(
    `warning: the broker on ${owner.host}:${owner.port} (pid ${owner.pid}) did not answer within ` +
      `${TOKENS_ON_WAIT_MS / 1000} s that it requires tokens; it will for the requests it reads a second from now on\n`,
  );
}

/**
 * A token takes effect only in the data dir of the broker that checks it: warns when no broker serves `dataDir`
 * and the one clients reach ($INTEROP_URL, else the default port) serves another, or hides which (with tokens,
 * its bare /status names no data dir).
 */
async function warnIfServedElsewhere(dataDir: string, io: Io): Promise<void> {
  if (liveOwner(dataDir) !== undefined) return;
  let url: string;
  let status: { service?: string; data_dir?: string; store?: { kind: string; location: string } };
  try {
    const given = brokerUrl("token", undefined, io.env);
    url = redactUrl(given);
    const token = readSecret(undefined, io.env.INTEROP_TOKEN, "$INTEROP_TOKEN");
    // fetch refuses a URL with a user and password: they go as Basic credentials, as the broker client sends them.
    const target = splitCredentials(given);
    const response = await fetch(`${target.url}/status`, {
      headers: authorizationHeader(target.basic, token),
      signal: AbortSignal.timeout(1000),
    });
    status = await response.json();
  } catch {
    return; // No broker answers there (or not with JSON): nothing to compare with.
  }
  if (status.service !== "interop") return;
  if (status.store?.kind === "postgresql") {
    io.stderr(
      `warning: the broker at ${url} reads its tokens from PostgreSQL, not from ${dataDir}: tokens changed here do not ` +
        `reach it; use --database-url ${status.store.location}\n`,
    );
  } else if (status.data_dir === undefined) {
    io.stderr(
      `warning: no broker serves ${dataDir}, and the broker at ${url} hides its data dir (it has tokens); ` +
        "if it uses another, pass that one as --data-dir DIR\n",
    );
  } else if (canonical(status.data_dir) !== canonical(dataDir)) {
    io.stderr(
      `warning: the broker at ${url} serves data dir ${status.data_dir}, not ${dataDir}: tokens changed here do not ` +
        `reach it; use --data-dir ${status.data_dir}\n`,
    );
  }
}

function canonical(dir: string): string {
  try {
    return realpathSync(dir);
  } catch {
    return resolve(dir);
  }
}
