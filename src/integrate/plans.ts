/** What `interop integrate` changes on this machine to plug Hermes or OpenClaw into interop, as reviewable edits. */
import { join } from "node:path";
import { parseDocument } from "yaml";
import { InteropError } from "../errors.ts";
import { DEFAULT_URL } from "../cli/args.ts";
import { hermesSkill, openclawSkill } from "./skills.ts";

/** One file to create or change; `apply` is idempotent: applied to its own output it changes nothing. */
export interface FileEdit {
  path: string;
  summary: string;
  /** What the user would add by hand. */
  snippet: string;
  apply(current: string | undefined): string;
  /** It holds a secret: a file it creates is readable by its owner only. */
  secret?: boolean;
}

export interface IntegrationPlan {
  edits: FileEdit[];
  /** Steps left to the user after the edits. */
  then: string[];
}

export interface PlanOptions {
  home: string;
  agent: string;
  peer: string;
  brokerUrl: string;
  /** How to run interop here (the executable's path, or "interop" on PATH). */
  command: string;
  /** The agent's token, when the broker has tokens: the file (which commands are pointed at) and what it holds. */
  token?: { file: string; value: string };
}

function mcpArgs(options: PlanOptions): string[] {
  return ["mcp", "--agent", options.agent, "--url", options.brokerUrl, ...tokenArgs(options)];
}

function tokenArgs(options: PlanOptions): string[] {
  return options.token === undefined ? [] : ["--token-file", options.token.file];
}

/** The flags the skill's commands need to reach this broker: none for the default one without tokens. */
function clientFlags(options: PlanOptions): string {
  const url = options.brokerUrl === DEFAULT_URL ? [] : ["--url", options.brokerUrl];
  return [...url, ...tokenArgs(options)].map((arg) => ` ${arg}`).join("");
}

export function hermesPlan(options: PlanOptions): IntegrationPlan {
  const hermes = join(options.home, ".hermes");
  const ntfy = {
    NTFY_SERVER_URL: `${options.brokerUrl}/ntfy/@${options.agent}`,
    NTFY_TOPIC: options.agent,
    NTFY_PUBLISH_TOPIC: options.peer,
    // Hermes's gateway denies ntfy users by default and answers them with a pairing code, which would land in the
    // peer's inbox. ntfy names no sender, so the adapter takes the topic a message arrived on as its user: allowing
    // the agent's own topic admits what interop delivers there, and who may publish to it is interop's to decide.
    NTFY_ALLOWED_USERS: options.agent,
    // ntfy clients send NTFY_TOKEN as a Bearer token; with tokens on, it says who the adapter is.
    ...(options.token === undefined ? {} : { NTFY_TOKEN: options.token.value }),
  };
  const server = { command: options.command, args: mcpArgs(options) };
  return {
    edits: [
      {
        path: join(hermes, "skills", "communication", "interop", "SKILL.md"),
        summary: "the skill that teaches Hermes when and how to send, ask, wait and reply",
        snippet: "(the whole file: integrations/hermes/SKILL.md)",
        apply: () => hermesSkill({ ...options, client: clientFlags(options) }),
      },
      {
        path: join(hermes, "config.yaml"),
        summary: "the interop MCP server (tools send, inbox, wait, ask, agents)",
        snippet: `mcp_servers:\n  interop:\n    command: ${server.command}\n    args: ${JSON.stringify(server.args)}`,
        apply: (current) => {
          const document = parseDocument(current ?? "");
          if (document.errors.length > 0) {
            throw new InteropError("usage", `Cannot edit config.yaml: ${document.errors[0].message}; add the snippet by hand`);
          }
          document.setIn(["mcp_servers", "interop"], document.createNode(server));
          return String(document);
        },
      },
      {
        path: join(hermes, ".env"),
        summary: "Hermes's ntfy adapter pointed at interop and allowed to hand its messages to Hermes, with no code",
        // The token itself stays out of what is printed.
        snippet: Object.entries(ntfy).map(([key, value]) => `${key}=${key === "NTFY_TOKEN" ? "(the token in " + options.token!.file + ")" : value}`).join("\n"),
        apply: (current) => setEnvLines(current ?? "", ntfy),
        secret: options.token !== undefined,
      },
    ],
    then: ["Restart the Hermes gateway so it loads the skill, the MCP server and the ntfy platform."],
  };
}

export function openclawPlan(options: PlanOptions & { gatewayUrl: string }): IntegrationPlan {
  const openclaw = join(options.home, ".openclaw");
  const server = { command: options.command, args: mcpArgs(options) };
  return {
    edits: [
      {
        path: join(openclaw, "workspace", "skills", "interop", "SKILL.md"),
        summary: "the skill that teaches the agent when and how to send, ask, wait and reply",
        snippet: "(the whole file: integrations/openclaw/SKILL.md)",
        apply: () => openclawSkill({ ...options, client: clientFlags(options) }),
      },
      {
        path: join(openclaw, "openclaw.json"),
        summary: "the interop MCP server (tools send, inbox, wait, ask, agents)",
        snippet: JSON.stringify({ mcp: { servers: { interop: server } } }, null, 2),
        apply: (current) => {
          let config: Record<string, any>;
          try {
            config = current === undefined || current.trim() === "" ? {} : JSON.parse(current);
          } catch (cause) {
            throw new InteropError("usage", `Cannot edit openclaw.json (not plain JSON: ${(cause as Error).message}); add the snippet by hand`);
          }
          config.mcp ??= {};
          config.mcp.servers ??= {};
          config.mcp.servers.interop = server;
          return JSON.stringify(config, null, 2) + "\n";
        },
      },
    ],
    then: [
      "Enable OpenClaw's hooks (hooks.enabled, hooks.token in openclaw.json) and save the token to a file.",
      `Start a turn for the agent (main; --openclaw-agent ID for another) on each message: ${options.command} listen --agent ${options.agent}${clientFlags(options)} --openclaw ${options.gatewayUrl} --push-token-file ~/.openclaw/hooks-token`,
      `Or keep that listener running under systemd: ${options.command} service install listen --agent ${options.agent} --url ${options.brokerUrl}${tokenArgs(options).map((arg) => ` ${arg}`).join("")} --openclaw ${options.gatewayUrl} --push-token-file ~/.openclaw/hooks-token`,
      "Restart the OpenClaw gateway so it loads the skill and the MCP server.",
    ],
  };
}

/** Sets KEY=VALUE lines in a .env text, replacing a key's old line and keeping everything else. */
function setEnvLines(text: string, values: Record<string, string>): string {
  const lines = text === "" ? [] : text.replace(/\n$/, "").split("\n");
  for (const [key, value] of Object.entries(values)) {
    const index = lines.findIndex((line) => line.startsWith(`${key}=`));
    if (index >= 0) lines[index] = `${key}=${value}`;
    else lines.push(`${key}=${value}`);
  }
  return lines.join("\n") + "\n";
}
