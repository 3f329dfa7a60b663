/**
 * The messages an `interop mcp` session holds for its next call (`TakenMessages`), kept in a file as well: they were
 * taken from the inbox already, so a session killed (SIGKILL, a crash, the OOM killer) before it returned or parked
 * them lost them. The next session of the same agent on the same broker takes over the file of a session that died,
 * and returns them first, as the dead one would have.
 */
import { lstatSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { withFileLock } from "../file_lock.ts";
import type { AgentName } from "../message.ts";
import { makeDirectory } from "../paths.ts";
import { PRIVATE_DIR_MODE, writePrivateFileAtomically } from "../private_files.ts";
import { processGone, type ProcessMark, processMark } from "../process_runs.ts";
import { byId, type HeldMessage, type KeptHeld } from "./taken_messages.ts";

/** What a session's file holds: its process (`pid`, `boot`, `started`), and what it held. */
interface HeldFileContent extends ProcessMark {
  agent: string;
  /** The brokers the session used (`--url`, passwords replaced): a session on another broker takes none of it over. */
  urls: string[];
  /**
   * The store its messages were read from (`Interop-Store`): a broker replaced at the same URL (another data dir) has
   * other messages under the same ids, and one of its own would have been shown as taken already (red team 62).
   */
  store: string;
  held: HeldMessage[];
}

export class HeldFile implements KeptHeld {
  /** This session's file: `DIR/AGENT.PID.json`. */
  readonly path: string;
  #dir: string;
  #agent: AgentName;
  #urls: readonly string[];
  #store: () => string | undefined;
  /** The store the files taken over were of (`takeOverDead`): this session's until it reads one itself. */
  #takenOverFrom: string | undefined;
  #failed: (error: Error) => void;
  #written = false;

  /**
   * `store`: the store the session's messages were read from, once it read one; `failed`: told of a write that failed
   * (the messages are then held in memory alone, as before).
   */
  constructor(dir: string, agent: AgentName, urls: readonly string[], store: () => string | undefined, failed: (error: Error) => void) {
    this.path = join(dir, `${agent}.${process.pid}.json`);
    this.#dir = dir;
    this.#agent = agent;
    this.#urls = urls;
    this.#store = store;
    this.#failed = failed;
  }

  /** Keeps `held` in the file, replacing what it kept (none: no file). False when the write failed. */
  keep(held: HeldMessage[]): boolean {
    try {
      const store = this.#store() ?? this.#takenOverFrom;
      if (held.length > 0) {
        if (store === undefined) throw new Error("no store read yet to name in it");
        makeDirectory(this.#dir, PRIVATE_DIR_MODE);
        const content: HeldFileContent = { agent: this.#agent, urls: [...this.#urls], store, ...processMark(), held };
        writePrivateFileAtomically(this.path, JSON.stringify(content) + "\n");
      } else if (this.#written) {
        rmSync(this.path, { force: true });
      }
      this.#written = held.length > 0;
      return true;
    } catch (error) {
      this.#failed(error as Error);
      return false;
    }
  }

  /**
   * Takes over the files of the agent's sessions on the broker's store as it is now (`storeNow`, asked only when there
   * are such files; undefined, unknown: none) whose process is gone: resolves with what they held, kept in this
   * session's file before theirs are removed (under a lock: two sessions starting at once take over each file once).
   * A file that cannot be read, or written over here, is left for a later session.
   */
  async takeOverDead(storeNow: () => Promise<string | undefined>): Promise<HeldMessage[]> {
    if (this.#deadFiles().length === 0) return [];
    const store = await storeNow();
    if (store === undefined || this.#deadFiles(store).length === 0) return [];
    this.#takenOverFrom = store;
    try {
      return await withFileLock(join(this.#dir, this.#agent), () => {
        const dead = this.#deadFiles(store);
        const held = new Map<number, HeldMessage>();
        for (const { content } of dead) for (const one of content.held) held.set(one.message.interop.id, one);
        const taken = [...held.values()].sort(byId);
        if (!this.keep(taken)) return Promise.resolve([]);
        for (const { path } of dead) rmSync(path, { force: true });
        return Promise.resolve(taken);
      });
    } catch (error) {
      this.#failed(error as Error);
      return [];
    }
  }

  /**
   * The files of this agent's sessions on `store` (any, undefined), through one of this session's URLs, whose process no longer runs;
   * only files of this user's that no one else may write (a state dir others can write would let them plant messages).
   */
  #deadFiles(store?: string): Array<{ path: string; content: HeldFileContent }> {
    let names: string[];
    try {
      names = readdirSync(this.#dir);
    } catch {
      return [];
    }
    return names.flatMap((name) => {
      const path = join(this.#dir, name);
      if (!name.startsWith(`${this.#agent}.`) || !name.endsWith(".json") || path === this.path) return [];
      const content = readContent(path);
      const ours = content?.agent === this.#agent && (store === undefined || content.store === store) &&
        content.urls.some((url) => this.#urls.includes(url));
      return ours && processGone(content) ? [{ path, content }] : [];
    });
  }
}

/** A session file's content, or undefined when it cannot be read as one (left alone). */
function readContent(path: string): HeldFileContent | undefined {
  try {
    const file = lstatSync(path);
    if (!file.isFile() || file.uid !== process.getuid?.() || (file.mode & 0o022) !== 0) return undefined;
    const content = JSON.parse(readFileSync(path, "utf8"));
    const valid = typeof content?.agent === "string" && Array.isArray(content.urls) && typeof content.store === "string" &&
      Number.isSafeInteger(content.pid) && ["undefined", "string"].includes(typeof content.boot) &&
      ["undefined", "string"].includes(typeof content.started) &&
      Array.isArray(content.held) && content.held.every((one: HeldMessage) => Number.isSafeInteger(one?.message?.interop?.id));
    return valid ? content : undefined;
  } catch {
    return undefined;
  }
}
