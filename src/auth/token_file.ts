/** The broker's tokens: `tokens.json` in the data dir holds only their SHA-256 hashes; a token is shown once. */
import { createHash } from "node:crypto";
import { closeSync, fstatSync, openSync, readFileSync, statSync, type Stats } from "node:fs";
import { join } from "node:path";
import { InteropError } from "../errors.ts";
import { withFileLock } from "../file_lock.ts";
import { type AgentName, isAgentName } from "../message.ts";
import { makeDirectory } from "../paths.ts";
import { PRIVATE_DIR_MODE, writePrivateFileAtomically } from "../private_files.ts";
import { mintToken, type TokenList, type TokenRecord } from "./token_list.ts";

export const TOKENS_FILE = "tokens.json";

/** The coarsest clock a file system keeps times by (FAT: 2 s; ext4: a few ms), with room to spare. */
const FILE_TIME_TICK_MS = 5000;

function sameFile(a: Stats, b: Stats): boolean {
  return a.ino === b.ino && a.dev === b.dev && a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs;
}

/** Reads and writes the token list; the file is replaced atomically, readable by its owner only. */
export class TokenFile implements TokenList {
  readonly path: string;
  /** The last hash `version()` took: of the file as `stat` saw it, at `at` (ms). */
  #hashed: { stat: Stats; version: number; at: number } | undefined;

  constructor(dataDir: string) {
    this.path = join(dataDir, TOKENS_FILE);
  }

  get where(): string {
    return this.path;
  }

  // async, so that a file it cannot read rejects rather than throws.
  async list(): Promise<TokenRecord[]> {
    return this.#read();
  }

  /**
   * A hash of the file's content (so it is re-read only when that changed); 0 while it does not exist. Not its
   * mtime: saves within one tick of the file system's clock (ext4: 93 of 200 saves made back to back) share it, and
   * a revocation saved so after the broker's read went unread until the next change, its token still working.
   *
   * The hash is reused while the file's identity, size and times are those it was taken of and those times were
   * already past the clock's coarsest tick when it was taken: every save replaces the file (a new inode), and a
   * change in place moves the times past them. Hashing on every call read a 20,000-token list (4 MB) once a second,
   * and up to ten times a second under a flood of unknown tokens.
   */
  async version(): Promise<number> {
    let fd: number;
    try {
      fd = openSync(this.path, "r");
    } catch {
      this.#hashed = undefined;
      return 0;
    }
    try {
      const stat = fstatSync(fd);
      const known = this.#hashed;
      const settled = known !== undefined && Math.max(stat.mtimeMs, stat.ctimeMs) < known.at - FILE_TIME_TICK_MS;
      if (settled && sameFile(known.stat, stat)) return known.version;
      const at = Date.now();
      const version = 1 + parseInt(createHash("sha256").update(readFileSync(fd)).digest("hex").slice(0, 12), 16);
      this.#hashed = { stat, version, at };
      return version;
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Every save replaces the file (a new inode), so a changed `stat` tells of each change made through interop. A hand
   * edit in place within the file system's clock tick is not seen here: the broker's re-read each second finds it.
   */
  changedSinceVersion(): boolean {
    const stat = statSync(this.path, { throwIfNoEntry: false });
    const known = this.#hashed;
    return stat === undefined ? known !== undefined : known === undefined || !sameFile(known.stat, stat);
  }

  async create(agent: AgentName, admin = false): Promise<{ record: TokenRecord; token: string }> {
    const created = mintToken(agent, admin);
    await this.add([created.record]);
    return created;
  }

  add(records: TokenRecord[]): Promise<number> {
    return this.hold(async () => {
      const tokens = this.#read();
      const added = records.filter((record) => !tokens.some((there) => there.id === record.id));
      if (added.length > 0) this.#save([...tokens, ...added]);
      return added.length;
    });
  }

  /** Nothing matched writes nothing, so it never creates the file. */
  revoke(match: { id?: string; agent?: string }): Promise<TokenRecord[]> {
    return this.hold(async () => {
      const tokens = this.#read();
      const removed = tokens.filter((record) => record.id === match.id || record.agent === match.agent);
      if (removed.length > 0) this.#save(tokens.filter((record) => !removed.includes(record)));
      return removed;
    });
  }

  /**
   * Runs `work` while no other process changes the list: each change reads it inside, so that two at once (two
   * `token create`, a create and a revoke) never save over each other, which would bring a revoked token back.
   */
  async hold<T>(work: () => Promise<T>): Promise<T> {
    makeDirectory(join(this.path, ".."), PRIVATE_DIR_MODE);
    return await withFileLock(this.path, work);
  }

  async watch(): Promise<void> {}

  async close(): Promise<void> {}

  #read(): TokenRecord[] {
    let text: string;
    try {
      text = readFileSync(this.path, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw new InteropError("storage_failed", `Cannot read ${this.path}: ${(error as Error).message}`, { cause: error });
    }
    let parsed: { tokens?: unknown } | null;
    try {
      parsed = JSON.parse(text);
    } catch (cause) {
      throw new InteropError("storage_failed", `${this.path} is not valid JSON: fix or remove it`, { cause });
    }
    const tokens = parsed?.tokens;
    // Edited by hand: a shape the broker cannot read refuses every token, as a file that is not JSON does, rather
    // than fail inside each request (500 with a stack, red team session 52).
    const bad = Array.isArray(tokens) ? tokens.findIndex((record) => !isTokenRecord(record)) : -2;
    if (bad !== -1) {
      const what = bad === -2 ? 'holds no "tokens" list' : `has a token ${bad + 1} that is not {"id", "agent", "hash" (64 hex digits), "created_at"}`;
      throw new InteropError("storage_failed", `${this.path} ${what}: fix or remove it`);
    }
    return tokens as TokenRecord[];
  }

  #save(tokens: TokenRecord[]): void {
    try {
      writePrivateFileAtomically(this.path, JSON.stringify({ tokens }, null, 2) + "\n");
    } catch (cause) {
      throw new InteropError("storage_failed", `Cannot save ${this.path}: ${(cause as Error).message}; it is as it was`, { cause });
    }
  }
}

function isTokenRecord(value: unknown): value is TokenRecord {
  if (typeof value !== "object" || value === null) return false;
  const { id, agent, hash, created_at, admin } = value as Record<string, unknown>;
  return typeof id === "string" && typeof created_at === "string" && typeof hash === "string" && /^[0-9a-f]{64}$/.test(hash) &&
    isAgentName(agent) && (admin === undefined || typeof admin === "boolean");
}
