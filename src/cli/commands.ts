/** The CLI's grammar in one place: every subcommand, loaded on demand, each with its help, options and words. */
import type { ParseArgsOptionsConfig } from "node:util";
import type { Io } from "./io.ts";

export interface Subcommand {
  /** Starts with "interop NAME — what it does". */
  HELP: string;
  /** The options it parses (completion offers them). */
  OPTIONS?: ParseArgsOptionsConfig;
  /** The words its first argument may be (completion offers them). */
  WORDS?: readonly string[];
  run(args: string[], io: Io): Promise<number>;
}

// Loaded on demand: `interop send`, which agents run per message, need not load the broker and the MCP SDK.
export const SUBCOMMANDS: Record<string, () => Promise<Subcommand>> = {
  serve: () => import("./serve.ts"),
  listen: () => import("./listen.ts"),
  send: () => import("./send.ts"),
  ask: () => import("./ask.ts"),
  poll: () => import("./poll.ts"),
  status: () => import("./status.ts"),
  mcp: () => import("./mcp.ts"),
  integrate: () => import("./integrate.ts"),
  token: () => import("./token.ts"),
  agent: () => import("./agent.ts"),
  service: () => import("./service.ts"),
  migrate: () => import("./migrate.ts"),
  completion: () => import("./completion.ts"),
  version: () => import("./version.ts"),
};

/** "create, list or revoke": a subcommand's WORDS in its usage errors. */
export function oneOf(words: readonly string[]): string {
  return words.length < 2 ? words.join("") : `${words.slice(0, -1).join(", ")} or ${words.at(-1)}`;
}
