/** `interop integrate`: the steps and snippets that plug Hermes or OpenClaw into interop here, and --write to apply them. */
import { copyFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { basename, dirname } from "node:path";
import { hermesPlan, type IntegrationPlan, openclawPlan } from "../integrate/plans.ts";
import { interopCommand, makeDirectory } from "../paths.ts";
import { agentFlag, brokerUrl, parseFlags, usageError } from "./args.ts";
import type { Io } from "./io.ts";

export const HELP = `interop integrate — plug Hermes or OpenClaw into interop

Usage: interop integrate hermes|openclaw [--write] [--json]

Prints the exact steps and snippets for this machine: a SKILL.md that teaches the agent
to send, ask, wait and reply; the interop MCP server in the agent's MCP config; and how
messages wake the agent (Hermes: its ntfy adapter; OpenClaw: listen --openclaw).
With --write it applies them: each file it changes is first backed up next to itself
(FILE.bak-TIMESTAMP); running it again changes nothing.

Options:
  --write             apply the edits instead of printing them
  -j, --json          print the plan (or with --write, what changed) as one JSON object
  -a, --agent NAME    the agent's interop name (default: hermes, or openclaw)
  --peer NAME         the agent it talks to (default: the other one)
  --gateway URL       OpenClaw's gateway (default http://127.0.0.1:18789)
  --home DIR          whose home to edit (default $HOME)
  -u, --url URL       broker (default $INTEROP_URL, else http://127.0.0.1:18900; HOST:PORT
                      means http://HOST:PORT)
  -h, --help          show this help

Exit codes: 0 done, 2 bad usage or a config file it cannot edit safely.
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
  url: { type: "string", short: "u" },
  help: { type: "boolean", short: "h", default: false },
} as const;

export function run(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseFlags("integrate", args, OPTIONS, true);
  if (values.help) {
    io.stdout(HELP);
    return Promise.resolve(0);
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
  };
  const plan = target === "hermes" ? hermesPlan(options) : openclawPlan({ ...options, gatewayUrl: values.gateway });
  if (values.write) apply(plan, values.json, io);
  else if (values.json) io.stdout(JSON.stringify({ edits: plan.edits.map(({ apply: _, ...edit }) => edit), then: plan.then }) + "\n");
  else print(plan, target, io);
  return Promise.resolve(0);
}

function print(plan: IntegrationPlan, target: string, io: Io): void {
  let text = `Plugging ${target} into interop on this machine:\n`;
  plan.edits.forEach((edit, index) => {
    text += `\n${index + 1}. ${edit.path}: ${edit.summary}\n${edit.snippet.replace(/^/gm, "     ")}\n`;
  });
  text += `\nThen:\n${plan.then.map((step) => `- ${step}\n`).join("")}`;
  text += `\nRun 'interop integrate ${target} --write' to make the file changes (each changed file is backed up first).\n`;
  io.stdout(text);
}

/** Works out every file first, so a config it cannot edit stops it before anything is written. */
function apply(plan: IntegrationPlan, json: boolean, io: Io): void {
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const changes = plan.edits.map((edit) => {
    const current = existsSync(edit.path) ? readFileSync(edit.path, "utf8") : undefined;
    return { edit, current, next: edit.apply(current) };
  });
  const done = changes.map(({ edit, current, next }) => {
    if (next === current) return { path: edit.path, change: "unchanged", backup: null };
    makeDirectory(dirname(edit.path));
    const backup = current === undefined ? null : `${edit.path}.bak-${stamp}`;
    if (backup !== null) copyFileSync(edit.path, backup);
    writeFileSync(edit.path, next);
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
