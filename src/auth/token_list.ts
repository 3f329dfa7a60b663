/** The broker's tokens wherever they live (a data dir's file, a PostgreSQL table): what both keep and how. */
import { createHash, randomBytes } from "node:crypto";
import type { AgentName } from "../message.ts";

export interface TokenRecord {
  id: string;
  agent: AgentName;
  /** SHA-256 of the token, hex: tokens are random, so a fast hash is enough. */
  hash: string;
  created_at: string;
  /** An operator's token: it may act as any agent and watch all traffic (the dashboard, metrics). */
  admin?: boolean;
}

/** A token list: the file of a data dir (`TokenFile`) or the table of a database (`PostgresTokens`). */
export interface TokenList {
  /** Where the tokens are, for messages: the file's path, or the database's URL without its password. */
  readonly where: string;
  list(): Promise<TokenRecord[]>;
  /** Makes a token for `agent`; the token itself is returned once and never stored. */
  create(agent: AgentName, admin?: boolean): Promise<{ record: TokenRecord; token: string }>;
  /**
   * Adds records made elsewhere (`mintToken`, a migrated data dir) as they are; one whose id is there already is
   * left alone. Resolves with how many were new.
   */
  add(records: TokenRecord[]): Promise<number>;
  /** Removes tokens by id, or every token of an agent; returns what was removed. Tokens stay on, even emptied. */
  revoke(match: { id?: string; agent?: string }): Promise<TokenRecord[]>;
  /**
   * Changes whenever the list does, and is 0 only while there never was a token: from the first one on, every
   * request needs a token, even after the last is revoked (revoking never opens every inbox).
   */
  version(): Promise<number>;
  /**
   * Whether the list may have changed since `version()` last looked, told at once: a file's `stat`, so that a
   * revocation saved before a request is read before it. False for a list that announces its changes (`watch`).
   */
  changedSinceVersion(): boolean;
  /** Calls `changed` when the list may have changed (a database's NOTIFY; a file has no such signal: it is polled). */
  watch(changed: () => void): Promise<void>;
  close(): Promise<void>;
}

export function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/** A new token and the record that keeps its hash. */
export function mintToken(agent: AgentName, admin: boolean): { record: TokenRecord; token: string } {
  const token = `itk_${randomBytes(32).toString("base64url")}`;
  const record: TokenRecord = {
    id: `tok_${randomBytes(6).toString("hex")}`,
    agent,
    hash: hashToken(token),
    created_at: new Date().toISOString(),
    ...(admin ? { admin: true } : {}),
  };
  return { record, token };
}
