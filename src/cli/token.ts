/** `interop token`: create, list and revoke the broker's tokens (stored as hashes in the data dir). */
import { TokenFile } from "../auth/token_file.ts";
import { parseAgentName } from "../message.ts";
import { defaultDataDir } from "../paths.ts";
import { parseFlags, usageError } from "./args.ts";
import type { Io } from "./io.ts";

export const HELP = `interop token — the broker's access tokens

Usage: interop token create --agent AGENT [--admin] [--data-dir DIR]
       interop token list [--data-dir DIR] [--json]
       interop token revoke (--id ID | --agent AGENT) [--data-dir DIR]

Once a data dir has a token, the broker serving it requires one on every request
(Authorization: Bearer TOKEN, or ?token= for clients that cannot set headers; the
bare /status liveness answer stays public), and a token acts only as its agent: it
sends as that agent and reads only that agent's inbox. Changes take effect within a
second, without restarting the broker. An --admin token (for the operator: the
dashboard, /metrics) may act as any agent and watch all traffic.

Revoking the last token does not turn tokens off: every request then gets 401 until a
new one is created. To go back to no tokens, stop the broker and delete DIR/tokens.json.

'create' prints the token once, on stdout; only its SHA-256 hash is stored
(DIR/tokens.json, mode 600). Clients take it from $INTEROP_TOKEN or --token-file.

Options:
  --agent AGENT       the agent the token acts as (create), or whose tokens to revoke
  --admin             create an operator token (default agent name: admin)
  --id ID             the token to revoke (see list)
  --data-dir DIR      the broker's data dir (default as for 'interop serve')
  --json              list as JSON
  -h, --help          show this help

Exit codes: 0 done, 2 bad usage or nothing matched.
`;

const OPTIONS = {
  agent: { type: "string" },
  id: { type: "string" },
  "data-dir": { type: "string" },
  json: { type: "boolean", default: false },
  admin: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const;

export function run(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseFlags("token", args, OPTIONS, true);
  if (values.help) {
    io.stdout(HELP);
    return Promise.resolve(0);
  }
  const file = new TokenFile(values["data-dir"] ?? defaultDataDir(io.env));
  const [action] = positionals;
  if (action === "create") {
    const agent = parseAgentName(values.agent ?? (values.admin ? "admin" : undefined), "--agent");
    const { record, token } = file.create(agent, values.admin);
    io.stderr(`created ${record.admin ? "admin " : ""}${record.id} for ${record.agent}; it is shown once, keep it safe:\n`);
    io.stdout(`${token}\n`);
  } else if (action === "list") {
    const tokens = file.list().map(({ id, agent, created_at, admin }) => ({ id, agent, created_at, admin: admin === true }));
    const line = (t: (typeof tokens)[number]) => `${t.id}  ${t.agent}${t.admin ? " (admin)" : ""}  ${t.created_at}\n`;
    io.stdout(values.json ? JSON.stringify(tokens) + "\n" : tokens.map(line).join(""));
  } else if (action === "revoke") {
    if (values.id === undefined && values.agent === undefined) throw usageError("token", "Say which: --id ID or --agent AGENT");
    const removed = file.revoke({ id: values.id, agent: values.agent });
    if (removed.length === 0) throw usageError("token", "No token matched");
    io.stdout(removed.map((record) => `revoked ${record.id} (${record.agent})\n`).join(""));
    if (file.list().length === 0) {
      io.stderr("no tokens left: the broker still requires one, so every request gets 401 until 'interop token create' makes one\n");
    }
  } else {
    throw usageError("token", "Say what to do: create, list or revoke");
  }
  return Promise.resolve(0);
}
