/** The last delivered id of a `listen`, kept in a file so a restart neither loses nor repeats a message. */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { InteropError } from "../errors.ts";
import type { StreamPosition } from "./broker_client.ts";
import { makeDirectory } from "../paths.ts";
import { PRIVATE_DIR_MODE, writePrivateFileAtomically } from "../private_files.ts";

interface CursorState {
  url: string;
  agent: string;
  last_id: number;
  /** The identity of the store that assigned `last_id` (absent in files older listens saved). */
  store?: string;
  updated_at: string;
}

export class CursorFile {
  readonly path: string;
  #url: string;
  #agent: string;

  constructor(path: string, url: string, agent: string) {
    this.path = path;
    this.#url = url;
    this.#agent = agent;
  }

  /** The saved position, or undefined when there is none for this agent (and, in a file without a store, this URL). */
  load(): StreamPosition | undefined {
    let text: string;
    try {
      text = readFileSync(this.path, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw new InteropError("usage", `Cannot read state file ${this.path}: ${(error as Error).message}`, { cause: error });
    }
    let state: CursorState;
    try {
      state = JSON.parse(text);
    } catch (cause) {
      throw new InteropError("usage", `State file ${this.path} is not valid JSON; delete it to start from the broker's cursor`, {
        cause,
      });
    }
    if (state.agent !== this.#agent || !Number.isSafeInteger(state.last_id)) return undefined;
    const store = typeof state.store === "string" ? state.store : undefined;
    // With the store's identity the URL does not matter: the broker checks it and reads from the agent's cursor when
    // it is another store. Dropping the id over a changed --url (a failover URL added, another spelling of the same
    // broker) would start at the cursor, past what the last listen was sent and never handled.
    if (store === undefined && state.url !== this.#url) return undefined;
    return { id: state.last_id, store };
  }

  /** Saves atomically (write then rename), so a crash leaves the old id or the new one, never half a file. */
  save(position: StreamPosition | undefined): void {
    makeDirectory(dirname(this.path), PRIVATE_DIR_MODE);
    if (position === undefined) {
      writeFileSync(this.path, "{}\n");
      return;
    }
    const state: CursorState = {
      url: this.#url,
      agent: this.#agent,
      last_id: position.id,
      ...(position.store === undefined ? {} : { store: position.store }),
      updated_at: new Date().toISOString(),
    };
    // 600, as the A2A state file beside it: `--state` may name a directory others can read.
    writePrivateFileAtomically(this.path, JSON.stringify(state) + "\n");
  }
}
