/**
 * The A2A half of `interop integrate`: Hermes's and OpenClaw's A2A peer settings pointing at interop, and the two
 * tokens of the link. The listen token is what `listen --a2a` presents to the agent's own A2A server (created here,
 * kept in a file next to the agent's config); the interop token is what the agent presents to interop's A2A
 * endpoint, an interop token of the agent, created only when the broker already has tokens: creating the first
 * one would make the broker refuse every client without a token.
 */
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { mintToken, type TokenList, type TokenRecord } from "../auth/token_list.ts";
import { InteropError } from "../errors.ts";
import type { AgentName } from "../message.ts";
import type { PlanOptions } from "./plans.ts";

/** The two secrets of the link, worked out on first use (only `--write` uses them: printing creates nothing). */
export interface A2aTokens {
  listen(): string;
  /** Undefined when the broker has no tokens: the agent then calls interop without one. */
  interop(): string | undefined;
}

/** Where the listen token is kept for `listen --a2a-token-file`. */
export function listenTokenPath(configDir: string): string {
  return join(configDir, "interop-a2a-token");
}

/** interop's A2A endpoint for messages to `peer`. */
export function peerUrl(options: PlanOptions): string {
  return `${options.brokerUrl}/a2a/${options.peer}`;
}

function newSecret(): string {
  return `a2a_${randomBytes(32).toString("base64url")}`;
}

export function readOptional(path: string): string | undefined {
  return existsSync(path) ? readFileSync(path, "utf8") : undefined;
}

/**
 * Tokens that reuse what an earlier run wrote (the token file, the agent's config), so running integrate again
 * changes nothing; `existingInterop` reads the interop token from the agent's config.
 */
export function a2aTokens(
  options: PlanOptions,
  configDir: string,
  existingInterop: () => string | undefined,
  existingListen: () => string | undefined,
): A2aTokens {
  let listen: string | undefined;
  let interop: { token: string | undefined } | undefined;
  return {
    listen: () => (listen ??= readOptional(listenTokenPath(configDir))?.trim() || existingListen() || newSecret()),
    interop: () => {
      if (interop !== undefined) return interop.token;
      const token = existingInterop() ?? options.token?.value ?? options.interopTokens?.mint(options.agent as AgentName);
      interop = { token };
      return token;
    },
  };
}

/**
 * The broker's tokens (its data dir's file, or its database), read before the plan is worked out; a token the
 * plan needs is made then and stored by `save`, before any file that holds it is written.
 */
export class InteropTokens {
  #list: TokenList;
  #any: boolean;
  #minted: TokenRecord[] = [];

  private constructor(list: TokenList, any: boolean) {
    this.#list = list;
    this.#any = any;
  }

  static async read(list: TokenList): Promise<InteropTokens> {
    return new InteropTokens(list, (await list.list()).length > 0);
  }

  /** A new token of `agent`, or undefined when the broker has none (the first would lock out every client). */
  mint(agent: AgentName): string | undefined {
    if (!this.#any) return undefined;
    const { record, token } = mintToken(agent, false);
    this.#minted.push(record);
    return token;
  }

  /** Stores the tokens `mint` made. */
  async save(): Promise<void> {
    if (this.#minted.length > 0) await this.#list.add(this.#minted);
  }
}

/** `A2A_PEER_TOKENS` (`name:token,…`) with `peer`'s entry set, the others kept. */
export function withPeerToken(current: string | undefined, peer: string, token: string): string {
  const entries = (current ?? "").split(",").map((entry) => entry.trim()).filter((entry) =>
    entry !== "" && !entry.startsWith(`${peer}:`)
  );
  return [...entries, `${peer}:${token}`].join(",");
}

/** The token an earlier run gave `peer` in Hermes's `.env` `A2A_PEER_TOKENS`. */
export function hermesPeerToken(envText: string | undefined, peer: string): string | undefined {
  const line = (envText ?? "").split("\n").find((text) => text.startsWith("A2A_PEER_TOKENS="));
  const entry = line?.slice("A2A_PEER_TOKENS=".length).split(",").map((text) => text.trim()).find((text) =>
    text.startsWith(`${peer}:`)
  );
  return entry?.slice(peer.length + 1) || undefined;
}

/** The interop token an earlier run put in Hermes's `a2a_agents.<peer>.auth`. */
export function hermesInteropToken(configText: string | undefined, peer: string): string | undefined {
  try {
    const token = parse(configText ?? "")?.a2a_agents?.[peer]?.auth?.token;
    return typeof token === "string" && token !== "" ? token : undefined;
  } catch {
    return undefined;
  }
}

/** Hermes's `a2a_agents.<peer>` entry: its A2A client calls interop's endpoint for the peer. */
export function hermesA2aAgent(options: PlanOptions, token: string | undefined): Record<string, unknown> {
  return { url: peerUrl(options), ...(token === undefined ? {} : { auth: { type: "bearer", token } }) };
}

/** The names OpenClaw's `openclaw config validate` takes for a peer. */
const OPENCLAW_PEER_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** An earlier run's `channels.a2a.peers.<peer>` in openclaw.json, if any. */
export function openclawPeer(
  configText: string | undefined,
  peer: string,
): { token?: string; outboundToken?: string } | undefined {
  try {
    const found = JSON.parse(configText ?? "{}")?.channels?.a2a?.peers?.[peer];
    return typeof found === "object" && found !== null ? found : undefined;
  } catch {
    return undefined;
  }
}

/**
 * `channels.a2a` with interop as the peer `peer`: OpenClaw sends to interop's endpoint for that peer (`url`,
 * `outboundToken`) and takes messages presenting `token` as coming from it. Checked against the rules OpenClaw's
 * config validation applies, so the gateway does not refuse to start on it.
 */
export function setOpenclawA2a(config: Record<string, any>, options: PlanOptions, tokens: A2aTokens): void {
  if (!OPENCLAW_PEER_NAME.test(options.peer)) {
    throw new InteropError(
      "usage",
      `OpenClaw takes A2A peer names of ^[a-z0-9][a-z0-9._-]{0,63}$, not ${JSON.stringify(options.peer)}`,
    );
  }
  const url = peerUrl(options);
  if (!/^https?:\/\//.test(url)) throw new InteropError("usage", `OpenClaw takes only http(s) peer URLs, not ${url}`);
  config.channels ??= {};
  config.channels.a2a ??= {};
  config.channels.a2a.enabled = true;
  config.channels.a2a.peers ??= {};
  const outboundToken = tokens.interop();
  config.channels.a2a.peers[options.peer] = {
    ...config.channels.a2a.peers[options.peer],
    url,
    token: tokens.listen(),
    ...(outboundToken === undefined ? {} : { outboundToken }),
  };
}
