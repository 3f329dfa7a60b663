/** Who is calling: the agent a request's token belongs to, when the broker has tokens at all. */
import { timingSafeEqual } from "node:crypto";
import { InteropError } from "../errors.ts";
import type { AgentName } from "../message.ts";
import type { IncomingRequest } from "../runtime/types.ts";
import { hashToken, type TokenFile, type TokenRecord } from "./token_file.ts";

/** Tokens created or revoked while the broker runs take effect within this long. */
const RELOAD_EVERY_MS = 1000;

/** The caller of a request: an agent (by its token), or anyone when the data dir never had tokens (loopback only). */
export type Caller = { agent: AgentName; tokenHash: string; admin: boolean } | "anyone";

interface RevocationWatch {
  tokenHash: string;
  onRevoked(): void;
}

export class Authenticator {
  #file: TokenFile;
  #tokens: TokenRecord[] = [];
  #loadedAt = -Infinity;
  #modifiedAt = -1;
  #enabled = false;
  #watches = new Set<RevocationWatch>();
  #watchTimer: ReturnType<typeof setInterval> | undefined;

  constructor(file: TokenFile) {
    this.#file = file;
  }

  /**
   * Whether requests need a token: from the moment the data dir has had one (`tokens.json` exists; revoking the
   * last token empties it but keeps it) until the broker stops, even if the file is then deleted. Revoking every
   * token locks everyone out; it never opens every inbox, nor serves a public --host without tokens.
   */
  get enabled(): boolean {
    this.#reload();
    return this.#enabled;
  }

  /** Whether a live token acts as `agent` (its inbox may then be created). */
  hasTokenFor(agent: AgentName): boolean {
    this.#reload();
    return this.#tokens.some((record) => record.agent === agent);
  }

  /**
   * The caller, from `Authorization: Bearer …` or, for clients that cannot set headers, `?token=`.
   * With tokens on, a missing or unknown token is 401.
   */
  identify(request: IncomingRequest): Caller {
    if (!this.enabled) return "anyone";
    const token = bearer(request.header("authorization")) ?? request.url.searchParams.get("token");
    if (token === null) {
      throw new InteropError("unauthorized", "Missing token: send Authorization: Bearer TOKEN (create one with 'interop token create')");
    }
    const hash = Buffer.from(hashToken(token), "hex");
    const record = this.#tokens.find((candidate) => timingSafeEqual(Buffer.from(candidate.hash, "hex"), hash));
    if (record === undefined) {
      throw new InteropError("unauthorized", "Invalid token: it is unknown or was revoked; create one with 'interop token create --agent NAME'");
    }
    return { agent: record.agent, tokenHash: record.hash, admin: record.admin === true };
  }

  /**
   * Calls `onRevoked` once the caller's token is revoked, checked every second and whenever the token file is
   * re-read (so once a request sees the revocation, so has every watch): a stream or a wait opened with a token
   * must not outlive it. Returns the function that stops watching.
   */
  watchRevocation(caller: Caller, onRevoked: () => void): () => void {
    if (caller === "anyone") return () => {};
    const watch = { tokenHash: caller.tokenHash, onRevoked };
    this.#watches.add(watch);
    this.#watchTimer ??= setInterval(() => {
      this.#reload();
      // Also when the file did not change: a watch may have started after the revocation was read.
      this.#endRevoked();
    }, RELOAD_EVERY_MS);
    return () => {
      this.#watches.delete(watch);
      if (this.#watches.size > 0 || this.#watchTimer === undefined) return;
      clearInterval(this.#watchTimer);
      this.#watchTimer = undefined;
    };
  }

  #endRevoked(): void {
    if (this.#watches.size === 0) return;
    const valid = new Set(this.#tokens.map((record) => record.hash));
    for (const watch of [...this.#watches]) {
      if (valid.has(watch.tokenHash)) continue;
      this.#watches.delete(watch);
      watch.onRevoked();
    }
  }

  #reload(): void {
    const now = Date.now();
    if (now - this.#loadedAt < RELOAD_EVERY_MS) return;
    this.#loadedAt = now;
    const modifiedAt = this.#file.modifiedAt();
    if (modifiedAt === this.#modifiedAt) return;
    this.#modifiedAt = modifiedAt;
    this.#tokens = this.#file.list();
    if (modifiedAt > 0) this.#enabled = true;
    this.#endRevoked();
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
