/** What `interop integrate` changes on this machine to plug Hermes or OpenClaw into interop, as reviewable edits. */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseDocument } from "yaml";
import { InteropError } from "../errors.ts";
import {
  a2aTokens,
  hermesA2aAgent,
  hermesInteropToken,
  hermesPeerToken,
  type InteropTokens,
  listenTokenPath,
  openclawPeer,
  peerUrl,
  readOptional,
  setOpenclawA2a,
  withPeerToken,
} from "./a2a_peers.ts";
import { DEFAULT_URL } from "../cli/args.ts";
import { shellWords } from "../cli/shell_words.ts";
import { hermesSkill, openclawSkill } from "./skills.ts";

/** One file to create or change; `apply` is idempotent: applied to its own output it changes nothing. */
export interface FileEdit {
  path: string;
  summary: string;
  /** What the user would add by hand. */
  snippet: string;
  apply(current: string | undefined): string;
  /** The mode of a file holding a secret (0o600): given to it, created or not, and to its backup. */
  mode?: number;
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
  /** The broker's tokens (with --write): the agent's interop token for A2A is made there when the broker has tokens. */
  interopTokens?: InteropTokens;
  /** The agent's token, when the broker has tokens: the file (which commands are pointed at) and what it holds. */
  token?: { file: string; value: string };
}

/** The file `listen --a2a-token-file` reads: the listen token, kept as an earlier run wrote it. */
function listenTokenEdit(configDir: string, listenToken: () => string): FileEdit {
  return {
    path: listenTokenPath(configDir),
    summary: "the token listen --a2a presents to the agent's A2A server (created here, mode 600)",
    snippet: "<a new random token>",
    apply: (current) => (current?.trim() ? current : listenToken() + "\n"),
    mode: 0o600,
  };
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
  const configPath = join(hermes, "config.yaml");
  const envPath = join(hermes, ".env");
  const tokens = a2aTokens(
    options,
    hermes,
    () => hermesInteropToken(readOptional(configPath), options.peer),
    () => hermesPeerToken(readOptional(envPath), options.peer),
  );
  return {
    edits: [
      {
        path: join(hermes, "skills", "communication", "interop", "SKILL.md"),
        summary: "the skill that teaches Hermes when and how to send, ask, wait and reply",
        snippet: "(the whole file: integrations/hermes/SKILL.md)",
        apply: () => hermesSkill({ ...options, client: clientFlags(options) }),
      },
      {
        path: configPath,
        summary: `the interop MCP server (tools send, inbox, wait, ask, agents), the A2A platform, and ${options.peer} as an ` +
          "A2A peer reached through interop (with an interop token of the agent when the broker has tokens)",
        snippet: `mcp_servers:\n  interop:\n    command: ${server.command}\n    args: ${JSON.stringify(server.args)}\n` +
          `gateway:\n  platforms:\n    a2a:\n      enabled: true\n` +
          `a2a_agents:\n  ${options.peer}:\n    url: ${peerUrl(options)}\n    auth: { type: bearer, token: <interop token of ${options.agent}> }`,
        apply: (current) => {
          const document = parseDocument(current ?? "");
          if (document.errors.length > 0) {
            throw new InteropError("usage", `Cannot edit config.yaml: ${document.errors[0].message}; add the snippet by hand`);
          }
          document.setIn(["mcp_servers", "interop"], document.createNode(server));
          document.setIn(["gateway", "platforms", "a2a", "enabled"], true);
          document.setIn(["a2a_agents", options.peer], document.createNode(hermesA2aAgent(options, tokens.interop())));
          return String(document);
        },
        // It holds the agent's interop token when the broker has tokens (and a later run may add it).
        mode: 0o600,
      },
      {
        path: envPath,
        summary: "Hermes's ntfy adapter pointed at interop and allowed to hand its messages to Hermes, with no code; " +
          `and the token interop's listen --a2a presents to Hermes's A2A server, as peer ${options.peer}`,
        // The token itself stays out of what is printed.
        snippet: Object.entries(ntfy).map(([key, value]) => `${key}=${key === "NTFY_TOKEN" ? "(the token in " + options.token!.file + ")" : value}`).join("\n") + `\nA2A_PEER_TOKENS=${options.peer}:<listen token>`,
        apply: (current) => {
          const peerTokens = /^A2A_PEER_TOKENS=(.*)$/m.exec(current ?? "")?.[1];
          return setEnvLines(current ?? "", { ...ntfy, A2A_PEER_TOKENS: withPeerToken(peerTokens, options.peer, tokens.listen()) });
        },
        // It holds the listen token (and NTFY_TOKEN with --token-file): a file it creates is its owner's only.
        mode: 0o600,
      },
      listenTokenEdit(hermes, tokens.listen),
    ],
    then: [
      // No config.yaml: Hermes is not set up (or not installed), and the files written alone give it no model to run.
      ...(existsSync(configPath) ? [] : [`${configPath} did not exist: install Hermes and run 'hermes setup' so it has its model and gateway settings.`]),
      "Restart the Hermes gateway so it loads the skill, the MCP server, the ntfy platform and the A2A platform.",
      `To deliver through Hermes's A2A server instead of ntfy (answers then come back to the asker), remove the NTFY_ lines and run: ` +
      `${options.command} listen --agent ${options.agent} --url ${options.brokerUrl}${tokenArgs(options).map((arg) => ` ${arg}`).join("")} --a2a http://127.0.0.1:9900/ --a2a-token-file ${shellWords([listenTokenPath(hermes)])}`,
    ],
  };
}

export function openclawPlan(options: PlanOptions & { gatewayUrl: string }): IntegrationPlan {
  const openclaw = join(options.home, ".openclaw");
  const server = { command: options.command, args: mcpArgs(options) };
  const configPath = join(openclaw, "openclaw.json");
  // Where the README's listener line reads OpenClaw's hooks token from: under --home, that home's.
  const hooksToken = shellWords([join(openclaw, "hooks-token")]);
  const tokens = a2aTokens(
    options,
    openclaw,
    () => openclawPeer(readOptional(configPath), options.peer)?.outboundToken,
    () => openclawPeer(readOptional(configPath), options.peer)?.token,
  );
  return {
    edits: [
      {
        path: join(openclaw, "workspace", "skills", "interop", "SKILL.md"),
        summary: "the skill that teaches the agent when and how to send, ask, wait and reply",
        snippet: "(the whole file: integrations/openclaw/SKILL.md)",
        apply: () => openclawSkill({ ...options, client: clientFlags(options) }),
      },
      {
        path: configPath,
        summary: `the interop MCP server (tools send, inbox, wait, ask, agents), and ${options.peer} as an A2A peer ` +
          "reached through interop (outboundToken: an interop token of the agent, when the broker has tokens)",
        snippet: JSON.stringify({
          mcp: { servers: { interop: server } },
          channels: {
            a2a: {
              enabled: true,
              peers: {
                [options.peer]: { url: peerUrl(options), token: "<listen token>", outboundToken: `<interop token of ${options.agent}>` },
              },
            },
          },
        }, null, 2),
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
          setOpenclawA2a(config, options, tokens);
          return JSON.stringify(config, null, 2) + "\n";
        },
        // It holds the listen token (and the agent's interop token when the broker has tokens).
        mode: 0o600,
      },
      listenTokenEdit(openclaw, tokens.listen),
    ],
    then: [
      // The gateway refuses to start on a config without gateway.mode, which only OpenClaw's own set-up writes.
      ...(existsSync(configPath) ? [] : [`${configPath} did not exist: run 'openclaw onboard' so the gateway has its own settings before it starts.`]),
      `Enable OpenClaw's hooks (hooks.enabled, hooks.token in openclaw.json) and save that token to ${hooksToken}, ` +
      `readable only by you (chmod 600 ${hooksToken}): the listener below sends it with each message.`,
      // --openclaw-wait: a gateway killed drops the turns it took and had not ended (red team 57: 3 of 40).
      `Start a turn for the agent (main; --openclaw-agent ID for another) on each message, the next once it ended (--openclaw-wait: ` +
      `none lost if the gateway is killed): ${options.command} listen --agent ${options.agent}${clientFlags(options)} --openclaw ${options.gatewayUrl} --openclaw-wait --push-token-file ${hooksToken}`,
      `Or keep that listener running under systemd: ${options.command} service install listen --agent ${options.agent} --url ${options.brokerUrl}${tokenArgs(options).map((arg) => ` ${arg}`).join("")} --openclaw ${options.gatewayUrl} --openclaw-wait --push-token-file ${hooksToken}`,
      `Or deliver through OpenClaw's A2A channel (answers then come back to the asker): ${options.command} listen --agent ${options.agent} ` +
      `--url ${options.brokerUrl}${tokenArgs(options).map((arg) => ` ${arg}`).join("")} --a2a ${options.gatewayUrl}/a2a/v1 --a2a-token-file ${shellWords([listenTokenPath(openclaw)])}`,
      "Restart the OpenClaw gateway so it loads the skill, the MCP server and the A2A channel (changing channels.a2a later restarts the channel and drops its tasks).",
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
