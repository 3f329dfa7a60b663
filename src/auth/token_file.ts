/** The broker's tokens: `tokens.json` in the data dir holds only their SHA-256 hashes; a token is shown once. */
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { InteropError } from "../errors.ts";
import type { AgentName } from "../message.ts";

export const TOKENS_FILE = "tokens.json";

export interface TokenRecord {
  id: string;
  agent: AgentName;
  /** SHA-256 of the token, hex: tokens are random, so a fast hash is enough. */
  hash: string;
  created_at: string;
  /** An operator's token: it may act as any agent and watch all traffic (the dashboard, metrics). */
  admin?: boolean;
}

export function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/** Reads and writes the token list; the file is replaced atomically, readable by its owner only. */
export class TokenFile {
  readonly path: string;

  constructor(dataDir: string) {
    this.path = join(dataDir, TOKENS_FILE);
  }

  list(): TokenRecord[] {
    let text: string;
    try {
      text = readFileSync(this.path, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw new InteropError("storage_failed", `Cannot read ${this.path}: ${(error as Error).message}`, { cause: error });
    }
    try {
      return JSON.parse(text).tokens;
    } catch (cause) {
      throw new InteropError("storage_failed", `${this.path} is not valid JSON: fix or remove it`, { cause });
    }
  }

  /** When the file last changed, to reload it only then; 0 if it does not exist. */
  modifiedAt(): number {
    try {
      return statSync(this.path).mtimeMs;
    } catch {
      return 0;
    }
  }

  /** Makes a token for `agent`; the token itself is returned once and never stored. */
  create(agent: AgentName, admin = false): { record: TokenRecord; token: string } {
    const token = `itk_${randomBytes(32).toString("base64url")}`;
    const record: TokenRecord = {
      id: `tok_${randomBytes(6).toString("hex")}`,
      agent,
      hash: hashToken(token),
      created_at: new Date().toISOString(),
      ...(admin ? { admin: true } : {}),
    };
    this.#save([...this.list(), record]);
    return { record, token };
  }

  /**
   * Removes tokens by id, or every token of an agent; returns what was removed. The file stays, even emptied: it
   * is what keeps authentication on. Nothing matched writes nothing, so it never creates the file.
   */
  revoke(match: { id?: string; agent?: string }): TokenRecord[] {
    const tokens = this.list();
    const removed = tokens.filter((record) => record.id === match.id || record.agent === match.agent);
    if (removed.length > 0) this.#save(tokens.filter((record) => !removed.includes(record)));
    return removed;
  }

  #save(tokens: TokenRecord[]): void {
    mkdirSync(join(this.path, ".."), { recursive: true });
    const temporary = `${this.path}.${process.pid}.tmp`;
    writeFileSync(temporary, JSON.stringify({ tokens }, null, 2) + "\n", { mode: 0o600 });
    renameSync(temporary, this.path);
  }
}
