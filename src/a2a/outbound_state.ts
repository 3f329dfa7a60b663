/**
 * What the A2A outbound listener has handed over and still follows, kept in a file next to the cursor file, so a
 * restarted listener neither sends a message again nor forgets a task it was waiting on.
 */
import { readFileSync } from "node:fs";
import { dirname } from "node:path";
import { InteropError } from "../errors.ts";
import { makeDirectory } from "../paths.ts";
import { PRIVATE_DIR_MODE, writePrivateFileAtomically } from "../private_files.ts";
import { redactUrl } from "../url_redaction.ts";
import type { A2aMessage, ProtocolVersion, TaskState } from "./protocol.ts";

/** One interop message on its way into the agent's A2A server. */
export interface OutboundRecord {
  /** The interop message id. */
  id: number;
  /** Who sent it: the answer goes back to them as a reply. */
  from: string;
  messageId: string;
  contextId: string;
  /** Unset while the SendMessage is under way: after a crash such a record is in doubt. */
  taskId?: string;
  /** Set instead of `taskId` when the server answered with a message (no task): published, not polled for. */
  answer?: { state: TaskState; answer: A2aMessage | undefined };
  /**
   * An answer handed to its asker's agent: its task is followed only to see the agent took it (one that ends
   * FAILED or REJECTED is parked), and what the agent says about it is not answered back.
   */
  reply?: true;
}

interface StateShape {
  /** The A2A URL with its secrets hidden (the file is as readable as the directory it is in); older files: as given. */
  url: string;
  agent: string;
  /** The highest message id the receiver took (or that was parked): the stream's redelivery of it is skipped. */
  last_sent: number;
  version: ProtocolVersion;
  records: OutboundRecord[];
}

/**
 * How many tasks the state file at `path` says a listen with `--a2a` sent and still follows, whatever its URL and
 * agent (0 when there is none, or none that can be read).
 */
export function followedTasks(path: string): number {
  try {
    const records = (JSON.parse(readFileSync(path, "utf8")) as Partial<StateShape>)?.records;
    return Array.isArray(records) ? records.length : 0;
  } catch {
    return 0;
  }
}

export class OutboundState {
  readonly path: string;
  #url: string;
  #agent: string;
  lastSent = 0;
  version: ProtocolVersion = "1.0";
  readonly records = new Map<number, OutboundRecord>();

  /**
   * Loads the file; one for another A2A URL or agent is ignored (what it followed belongs to that setup). A URL that
   * differs only in a secret (a new `?token=`) is the same setup.
   */
  constructor(path: string, url: string, agent: string) {
    this.path = path;
    this.#url = redactUrl(url);
    this.#agent = agent;
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
      throw new InteropError("usage", `Cannot read A2A state file ${path}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    let state: StateShape;
    try {
      state = JSON.parse(text);
    } catch (cause) {
      throw new InteropError(
        "usage",
        `A2A state file ${path} is not valid JSON; move it away to start afresh (tasks it follows are then not answered)`,
        {
          cause,
        },
      );
    }
    if ((state.url !== this.#url && state.url !== url) || state.agent !== agent) return;
    this.lastSent = Number.isSafeInteger(state.last_sent) ? state.last_sent : 0;
    this.version = state.version === "0.3" ? "0.3" : "1.0";
    for (const record of state.records ?? []) this.records.set(record.id, record);
  }

  /** Writes atomically (write then rename): a crash leaves the old state or the new one. */
  save(): void {
    makeDirectory(dirname(this.path), PRIVATE_DIR_MODE);
    const state: StateShape = {
      url: this.#url,
      agent: this.#agent,
      last_sent: this.lastSent,
      version: this.version,
      records: [...this.records.values()],
    };
    // 600 as the data dir's files: it holds the agent's answers, and `--state` may name a directory others can read.
    writePrivateFileAtomically(this.path, JSON.stringify(state) + "\n");
  }
}
