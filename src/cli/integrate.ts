/** `interop integrate`: the steps and snippets that plug Hermes or OpenClaw into interop here, and --write to apply them. */
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { basename, dirname, resolve } from "node:path";
import { TokenFile } from "../auth/token_file.ts";
import { InteropError } from "../errors.ts";
import { InteropTokens } from "../integrate/a2a_peers.ts";
import { hermesPlan, type IntegrationPlan, openclawPlan } from "../integrate/plans.ts";
import { defaultDataDir, interopCommand, makeDirectory } from "../paths.ts";
import { refuseIfMoved } from "../store/moved_store.ts";
import { PostgresTokens } from "../store/postgres_tokens.ts";
import { hasSecrets } from "../client/url_credentials.ts";
import { redactCredentials, redactUrl } from "../url_redaction.ts";
import { agentFlag, brokerClient, brokerUrl, checkDatabaseUrl, parseFlags, readSecret, usageError } from "./args.ts";
import { refuseBadPushUrls } from "./push_url_variables.ts";
import { shellWords } from "./shell_words.ts";
import type { Io } from "./io.ts";

export const HELP = `interop integrate — plug Hermes or OpenClaw into interop

Usage: interop integrate hermes|openclaw [--write] [--json] [--url URL] [--token-file FILE]
                        [--data-dir DIR | --database-url URL]

Prints the exact steps and snippets for this machine: a SKILL.md that teaches the agent
to send, ask, wait and reply; the interop MCP server in the agent's MCP config; and how
messages wake the agent (Hermes: its ntfy adapter; OpenClaw: listen --openclaw).
With --write it applies them: each file it changes is first backed up next to itself
(FILE.bak-TIMESTAMP); running it again changes nothing. The broker's URL (and with
--token-file, the agent's token) goes wherever the agent needs it: the MCP server's
arguments, the skill's commands, Hermes's .env (NTFY_TOKEN), the listen line.

Options:
  --write             apply the edits instead of printing them
  -j, --json          print the plan (or with --write, what changed) as one JSON object
  -a, --agent NAME    the agent's interop name (default: hermes, or openclaw)
  --peer NAME         the agent it talks to (default: the other one)
  --gateway URL       OpenClaw's gateway (default http://127.0.0.1:18789)
  --home DIR          whose home to edit (default $HOME)
  --data-dir DIR      the broker's data dir (default as for 'interop serve', in --home's
                      home when given): when the broker has tokens, an interop token for
                      the agent's A2A calls is created there
  --database-url URL  for brokers on PostgreSQL: the A2A token is created in the database
                      instead (default $INTEROP_DATABASE_URL unless --data-dir is given)
  -u, --url URL       broker (default $INTEROP_URL, else http://127.0.0.1:18900; HOST:PORT
                      means http://HOST:PORT)
  --token-file FILE   the agent's token, for a broker with tokens (interop token create
                      --agent NAME > FILE); without it, a broker with tokens is warned of
                      (asked at --url, or when it is not running, by --data-dir's tokens)
  -h, --help          show this help

Exit codes: 0 done, 2 bad usage or a config file it cannot edit safely, 1 a database it
cannot reach, 6 --write waited a minute for other processes' changes of the data dir's
tokens (interop token, migrate).
`;

/** The agent kinds it plugs in. */
export const WORDS = ["hermes", "openclaw"] as const;

export const OPTIONS = {
  write: { type: "boolean", default: false },
  json: { type: "boolean", short: "j", default: false },
  agent: { type: "string", short: "a" },
  peer: { type: "string" },
  gateway: { type: "string", default: "http://127.0.0.1:18789" },
  home: { type: "string" },
  "data-dir": { type: "string" },
  "database-url": { type: "string" },
  url: { type: "string", short: "u" },
  "token-file": { type: "string" },
  help: { type: "boolean", short: "h", default: false },
} as const;

export async function run(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseFlags("integrate", args, OPTIONS, true);
  if (values.help) {
    io.stdout(HELP);
    return 0;
  }
  const target = positionals[0];
  if (positionals.length !== 1 || !WORDS.includes(target as (typeof WORDS)[number])) {
    throw usageError("integrate", "Name one agent kind: interop integrate hermes, or interop integrate openclaw");
  }
  const other = target === "hermes" ? "openclaw" : "hermes";
  const options = {
    home: values.home ?? io.env.HOME ?? homedir(),
    agent: agentFlag("integrate", "--agent", values.agent ?? target),
    peer: agentFlag("integrate", "--peer", values.peer ?? other),
    brokerUrl: brokerUrl("integrate", values.url, io.env),
    command: interopCommand(),
    token: agentToken(values["token-file"]),
  };
  // Everything integrate writes (the skill, read into the model's context; MCP arguments; peer URLs) and prints
  // would carry the password, in files others may read: the broker's own token does that job instead.
  // A path that looks like a key is far more often a proxy's prefix than a secret: not refused.
  if (options.brokerUrl.split(",").some((url) => hasSecrets(url, { pathKeys: false }))) {
    throw usageError(
      "integrate",
      `Invalid ${values.url === undefined ? "$INTEROP_URL" : "--url"}: ${JSON.stringify(redactUrl(options.brokerUrl))} has a user or password, or a secret query parameter, which integrate would write into the agent's skill and config; give the URL without it, and the agent a token: interop token create --agent ${options.agent} > FILE, then --token-file FILE`,
    );
  }
  // A flag wins over the environment; a database over a data dir named the same way (as for interop token).
  const databaseUrl = values["database-url"] ?? (values["data-dir"] === undefined ? io.env.INTEROP_DATABASE_URL || undefined : undefined);
  if (databaseUrl !== undefined) checkDatabaseUrl("integrate", "--database-url", databaseUrl);
  // Written into the listener's --a2a, which would refuse it.
  refuseBadPushUrls("integrate", { openclaw: values.gateway }, () => "--gateway");
  if (options.token === undefined) {
    // A broker that is not running is asked through the data dir named (a database is left alone: not opened to
    // warn); --write reads that data dir's tokens itself and makes the agent one, or says why it cannot.
    const dataDir = databaseUrl === undefined && !values.write ? values["data-dir"] : undefined;
    await warnIfTokensOn(values.url, dataDir, options.agent, io);
  }
  if (values.write) {
    // The broker of the home being edited: a test's (or another user's) --home must not reach this user's tokens.
    const dataDir = values["data-dir"] ??
      defaultDataDir(values.home === undefined ? io.env : { ...io.env, HOME: values.home, XDG_STATE_HOME: undefined });
    if (databaseUrl === undefined) refuseIfMoved(dataDir, "write the agent's token");
    const list = databaseUrl === undefined ? new TokenFile(dataDir) : await PostgresTokens.open(databaseUrl);
    try {
      const interopTokens = await InteropTokens.read(list);
      const plan = target === "hermes"
        ? hermesPlan({ ...options, interopTokens })
        : openclawPlan({ ...options, interopTokens, gatewayUrl: values.gateway });
      await apply(plan, interopTokens, values.json, io);
    } finally {
      await list.close();
    }
    return 0;
  }
  const plan = target === "hermes" ? hermesPlan(options) : openclawPlan({ ...options, gatewayUrl: values.gateway });
  if (values.json) io.stdout(JSON.stringify({ edits: plan.edits.map(({ apply: _, ...edit }) => edit), then: plan.then }) + "\n");
  else print(plan, target, args, io);
  return 0;
}

/** The token file as an absolute path (the agent runs commands from elsewhere) and what it holds. */
function agentToken(file: string | undefined): { file: string; value: string } | undefined {
  if (file === undefined) return undefined;
  const value = readSecret(file, undefined);
  if (value === undefined) throw usageError("integrate", `Invalid --token-file: ${file} is empty`);
  return { file: resolve(file), value };
}

/**
 * An agent configured without a token for a broker with tokens would get 401 on everything: say so, asking the broker,
 * or when it does not answer, the token file of `dataDir` (the data dir it was told).
 */
async function warnIfTokensOn(url: string | undefined, dataDir: string | undefined, agent: string, io: Io): Promise<void> {
  const warn = (who: string) =>
    io.stderr(
      `warning: ${who} has tokens: without one ${agent} gets 401; create one (interop token create --agent ${agent} > FILE) ` +
        `and run this again with --token-file FILE\n`,
    );
  try {
    await brokerClient("integrate", { url }, { ...io.env, INTEROP_TOKEN: "" }, 2000).status();
  } catch (error) {
    if (!(error instanceof InteropError)) return;
    if (error.code === "unauthorized") return warn("this broker");
    if (error.code !== "unreachable" || dataDir === undefined) return;
    // A data dir that cannot be read (none yet, another user's) has nothing to tell.
    const tokens = await new TokenFile(dataDir).list().catch(() => []);
    if (tokens.length > 0) warn(`the broker's data dir ${dataDir} (the broker is not answering)`);
  }
}

function print(plan: IntegrationPlan, target: string, args: string[], io: Io): void {
  let text = `Plugging ${target} into interop on this machine:\n`;
  plan.edits.forEach((edit, index) => {
    text += `\n${index + 1}. ${edit.path}: ${edit.summary}\n${edit.snippet.replace(/^/gm, "     ")}\n`;
  });
  text += `\nThen:\n${plan.then.map((step) => `- ${step}\n`).join("")}`;
  // With the arguments given: without them (--home, --url, --data-dir) the files changed would be other ones. A
  // --database-url's password is not printed (type it again).
  const again = redactCredentials(`interop integrate ${shellWords(args)} --write`);
  text += `\nTo make the file changes (each changed file is backed up first), run:\n  ${again}\n`;
  io.stdout(text);
}

/**
 * Works out every file first, so a config it cannot edit stops it before anything is written; then stores the
 * tokens the files will hold, then writes them.
 */
async function apply(plan: IntegrationPlan, tokens: InteropTokens, json: boolean, io: Io): Promise<void> {
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const changes = plan.edits.map((edit) => {
    const current = existsSync(edit.path) ? readFileSync(edit.path, "utf8") : undefined;
    return { edit, current, next: edit.apply(current) };
  });
  await tokens.save();
  const done = changes.map(({ edit, current, next }) => {
    if (next === current) return { path: edit.path, change: "unchanged", backup: null };
    makeDirectory(dirname(edit.path));
    const backup = current === undefined ? null : `${edit.path}.bak-${stamp}`;
    if (backup !== null) {
      // A secret's backup is its owner's only from the start; another file's keeps the file's mode.
      writeFileSync(backup, current!, { mode: edit.mode ?? statSync(edit.path).mode & 0o777, flag: "wx" });
    }
    // writeFileSync's mode applies only to a file it creates: an existing one is made private before the secret goes in.
    if (edit.mode !== undefined && current !== undefined) chmodSync(edit.path, edit.mode);
    writeFileSync(edit.path, next, { mode: edit.mode });
    return { path: edit.path, change: current === undefined ? "created" : "updated", backup };
  });
  if (json) {
    io.stdout(JSON.stringify({ changes: done, then: plan.then }) + "\n");
    return;
  }
  for (const { path, change, backup } of done) {
    io.stdout(`${change} ${path}${backup === null ? "" : ` (backup: ${basename(backup)})`}\n`);
  }
  io.stdout(`\nThen:\n${plan.then.map((step) => `- ${step}\n`).join("")}`);
}
