/** Who is calling: the agent a request's token belongs to, when the broker has tokens at all. */
import { InteropError } from "../errors.ts";
import type { AgentName } from "../message.ts";
import type { IncomingRequest } from "../runtime/types.ts";
import { hashToken, type TokenList, type TokenRecord } from "./token_list.ts";

/** Tokens created or revoked while the broker runs take effect within this long. */
const RELOAD_EVERY_MS = 1000;

/**
 * Unknown tokens start a re-read of the list at most this often: anyone can send them, and a flood of random ones
 * re-read it once per request (measured on PostgreSQL: 200-300 `SELECT tokens_version` a second, one a bad request
 * sent in turn), where now it costs at most 10 reads a second; a new token's first request waits this long at most.
 */
const UNKNOWN_REREAD_GAP_MS = 100;

/** The caller of a request: an agent (by its token), or anyone when the data dir never had tokens (loopback only). */
export type Caller = { agent: AgentName; tokenHash: string; admin: boolean } | "anyone";

interface RevocationWatch {
  /** Undefined for a caller without a token: its watch ends once tokens are on. */
  tokenHash: string | undefined;
  onRevoked(): void;
}

export class Authenticator {
  #list: TokenList;
  /**
   * The live tokens by their hash. Looked up by hash, not compared in constant time one by one: what a lookup's time
   * could tell is how much of a hash an unknown token's shares with a live one's, and a token whose hash matches
   * cannot be found from that (SHA-256 has no known preimages); the scan cost ~4.5 ms a request at 20,000 tokens.
   */
  #tokens = new Map<string, TokenRecord>();
  #loadedAt = -Infinity;
  /** Why the last read failed, until one succeeds. */
  #failure: unknown;
  #version = -1;
  #enabled = false;
  /** The re-read in progress: the requests that need it share it. */
  #loading: Promise<void> | undefined;
  /** The re-read that requests with an unknown token wait for, not started yet: they share it. */
  #unknownReread: Promise<void> | undefined;
  #unknownRereadAt = -Infinity;
  #watches = new Set<RevocationWatch>();
  #watchTimer: ReturnType<typeof setInterval> | undefined;

  private constructor(list: TokenList) {
    this.#list = list;
  }

  /**
   * Reads the tokens once (a list it cannot read fails the start) and re-reads them as soon as `list` says they
   * changed (a database's NOTIFY), besides at most a second before each request.
   */
  static async open(list: TokenList): Promise<Authenticator> {
    const auth = new Authenticator(list);
    await auth.#reload();
    if (auth.#failure !== undefined) throw auth.#failure;
    // After a read in progress, which may have missed the change.
    await list.watch(() => void (auth.#loading ?? Promise.resolve()).then(() => auth.#reload()));
    return auth;
  }

  /**
   * Whether requests need a token: from the moment the list has had one (`tokens.json` exists, or the database's
   * token version left 0; revoking the last token keeps it so) until the broker stops, even if the file is then
   * deleted. Revoking every token locks everyone out; it never opens every inbox, nor serves a public --host
   * without tokens. As of the last read: `current()` makes it at most a second old.
   */
  get enabled(): boolean {
    return this.#enabled;
  }

  /** `enabled`, at most a second old (a list it cannot read has tokens on, or `enabled` would be false). */
  async on(): Promise<boolean> {
    await this.current().catch(() => {});
    return this.#enabled;
  }

  /** Whether a live token acts as `agent` (its inbox may then be created). */
  hasTokenFor(agent: AgentName): boolean {
    for (const record of this.#tokens.values()) if (record.agent === agent) return true;
    return false;
  }

  /**
   * Resolves once the tokens are at most a second old and, with tokens on, read since their last save (a data
   * dir's), re-reading them if not. Fails closed: with tokens on, a list it cannot read (PostgreSQL down: 503
   * storage_unavailable) rejects, and never counts as no tokens. A list that never had a token stays open during an
   * outage: no token can be made while the database is down.
   */
  async current(): Promise<void> {
    // With tokens on, a list saved since it was read (`interop token revoke` has returned) is read before this
    // request is served: its token is refused, and a wait or stream of a token it revoked ends before this request
    // can publish to it. ~2-7 µs a request (a `stat`); without tokens, the first token is read within the second.
    const saved = this.#enabled && this.#list.changedSinceVersion();
    if (saved || performance.now() - this.#loadedAt >= RELOAD_EVERY_MS) await this.#reload();
    if (this.#failure !== undefined && this.#enabled) throw this.#failure;
  }

  /**
   * The caller, from `Authorization: Bearer …` or, for clients that cannot set headers, `?token=`.
   * With tokens on, a missing or unknown token is 401.
   */
  async identify(request: IncomingRequest): Promise<Caller> {
    await this.current();
    if (!this.#enabled) return "anyone";
    const token = bearer(request.header("authorization")) ?? request.url.searchParams.get("token");
    if (token === null) {
      throw new InteropError("unauthorized", "Missing token: send Authorization: Bearer TOKEN (create one with 'interop token create')");
    }
    const hash = hashToken(token);
    const find = () => this.#tokens.get(hash);
    let record = find();
    if (record === undefined) {
      // Made a moment ago (`interop token create`, or through another broker on the database) and not read yet: the
      // list is read again (if its version changed) before the token is called unknown.
      await this.#rereadForUnknown();
      record = find();
      // Not read (PostgreSQL away): the token may be one made a moment ago, so 503 (retry), as `current()` fails
      // closed, rather than 401, which tells its client to give up on a token that may be valid.
      if (record === undefined && this.#failure !== undefined) throw this.#failure;
    }
    if (record === undefined) {
      throw new InteropError("unauthorized", "Invalid token: it is unknown or was revoked; create one with 'interop token create --agent NAME'");
    }
    return { agent: record.agent, tokenHash: record.hash, admin: record.admin === true };
  }

  /**
   * Refuses (401) a caller let in at its request's head whose token was revoked since, or, let in without a token,
   * once tokens are on: a body that arrives in parts (chunked, or past what is read with the head) may come long
   * after, and `interop token revoke` has returned by then.
   */
  async confirm(caller: Caller): Promise<void> {
    await this.current();
    if (caller === "anyone" ? !this.#enabled : this.#tokens.has(caller.tokenHash)) return;
    throw new InteropError(
      "unauthorized",
      caller === "anyone"
        ? "Missing token: tokens were turned on while the request's body arrived; send Authorization: Bearer TOKEN"
        : "Invalid token: it was revoked while the request's body arrived; nothing was done",
    );
  }

  /**
   * Calls `onRevoked` once the caller's token is revoked, checked every second and whenever the tokens are
   * re-read (so once a request sees the revocation, so has every watch): a stream or a wait opened with a token
   * must not outlive it, nor one opened without a token the first token (which turns tokens on). Returns the
   * function that stops watching.
   */
  watchRevocation(caller: Caller, onRevoked: () => void): () => void {
    const watch = { tokenHash: caller === "anyone" ? undefined : caller.tokenHash, onRevoked };
    this.#watches.add(watch);
    this.#watchTimer ??= setInterval(() => {
      // Read at each tick, not when `current()` finds the list a second old: the last read ended just under a second
      // ago, so it would read at every other tick, and a revocation would take up to two seconds to end a stream.
      // `#endRevoked` also when nothing changed: a watch may have started after the revocation was read.
      void this.#reload().then(() => this.#endRevoked());
    }, RELOAD_EVERY_MS);
    return () => {
      this.#watches.delete(watch);
      if (this.#watches.size > 0 || this.#watchTimer === undefined) return;
      clearInterval(this.#watchTimer);
      this.#watchTimer = undefined;
    };
  }

  /** Stops listening for changes and closes the list. */
  async close(): Promise<void> {
    clearInterval(this.#watchTimer);
    this.#watchTimer = undefined;
    await this.#list.close();
  }

  #endRevoked(): void {
    if (this.#watches.size === 0) return;
    for (const watch of [...this.#watches]) {
      if (watch.tokenHash === undefined ? !this.#enabled : this.#tokens.has(watch.tokenHash)) continue;
      this.#watches.delete(watch);
      watch.onRevoked();
    }
  }

  /**
   * A re-read that starts after this call (one under way may have started before the token was made), at most one
   * each UNKNOWN_REREAD_GAP_MS: the requests that come before it starts share it.
   */
  #rereadForUnknown(): Promise<void> {
    this.#unknownReread ??= (async () => {
      // Not in this turn: `??=` stores this promise first, and it is cleared below as the read starts.
      await Promise.resolve();
      const wait = this.#unknownRereadAt + UNKNOWN_REREAD_GAP_MS - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      while (this.#loading !== undefined) await this.#loading;
      // In the same turn as the read starts: a request that comes after shares the next one.
      this.#unknownReread = undefined;
      this.#unknownRereadAt = performance.now();
      await this.#reload();
    })();
    return this.#unknownReread;
  }

  /** Re-reads the list if its version changed; never rejects: a failure is kept for `current()` (tried again a second later). */
  #reload(): Promise<void> {
    this.#loading ??= (async () => {
      try {
        const version = await this.#list.version();
        if (version !== this.#version) {
          this.#tokens = new Map((await this.#list.list()).map((record) => [record.hash, record]));
          this.#version = version;
          if (version > 0) this.#enabled = true;
          this.#endRevoked();
        }
        this.#failure = undefined;
      } catch (error) {
        this.#failure = error;
      } finally {
        this.#loadedAt = performance.now();
        this.#loading = undefined;
      }
    })();
    return this.#loading;
  }
}

/** Refuses a caller acting for another agent (403): sending as it, or reading its inbox. Admins act for any. */
export function authorize(caller: Caller, agent: AgentName, action: string): void {
  if (caller === "anyone" || caller.admin || caller.agent === agent) return;
  throw new InteropError("forbidden", `Forbidden: the token of ${caller.agent} cannot ${action} ${agent}`);
}

/** Refuses what only the operator may see when tokens are on (all traffic, metrics): 403 for an agent's token. */
export function authorizeAdmin(caller: Caller, what: string): void {
  if (caller === "anyone" || caller.admin) return;
  throw new InteropError("forbidden", `Forbidden: ${what} needs an admin token (interop token create --admin)`);
}

function bearer(header: string | null): string | null {
  const match = header === null ? null : /^Bearer\s+(\S+)$/i.exec(header);
  return match ? match[1] : null;
}
