/** Where interop keeps its files by default: per user, following the XDG base directory spec. */
import { mkdirSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { basename, dirname, join } from "node:path";
import process from "node:process";

type Env = Record<string, string | undefined>;

/** `$XDG_STATE_HOME`, else `~/.local/state`. */
export function stateHome(env: Env): string {
  return env.XDG_STATE_HOME || join(env.HOME || homedir(), ".local", "state");
}

/** The broker's data dir: `$INTEROP_DATA_DIR`, else `$XDG_STATE_HOME/interop`, else `~/.local/state/interop`. */
export function defaultDataDir(env: Env): string {
  return env.INTEROP_DATA_DIR || join(stateHome(env), "interop");
}

/** Where `listen` keeps its last-delivered ids between runs. */
export function defaultListenStateDir(env: Env): string {
  return join(stateHome(env), "interop", "listen");
}

/** Where `interop mcp` keeps the messages each session holds for its next call (`HeldFile`). */
export function defaultMcpStateDir(env: Env): string {
  return join(stateHome(env), "interop", "mcp");
}

/** The single executable names itself; from source, the installed `interop` on PATH is meant. */
export function interopCommand(): string {
  return basename(process.execPath) === "interop" ? process.execPath : "interop";
}

/**
 * `mkdir -p` that gives up. Node 24's `mkdirSync(path, { recursive: true })` spins at 100 % CPU, deaf to signals,
 * when mkdir answers ENOENT although the parent exists (any path under /proc): it makes the parent (EEXIST) and
 * tries again, forever. Here a second ENOENT once the parent is there is the error it is. `mode` is given to each
 * directory made here, parents included (listen's state dir is inside the default data dir, and may come first);
 * one already there keeps its mode.
 */
export function makeDirectory(path: string, mode?: number): void {
  if (_mkdir(path, mode) === undefined) return;
  const parent = dirname(path);
  if (parent === path) throw new Error(`Cannot create ${path}: its root does not exist`);
  makeDirectory(parent, mode);
  const again = _mkdir(path, mode);
  if (again !== undefined) throw again;
}

/** Makes one directory; undefined when it is there now, the ENOENT when its parent is missing (or cannot hold it). */
function _mkdir(path: string, mode: number | undefined): Error | undefined {
  try {
    mkdirSync(path, { mode });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return error as Error;
    if (code !== "EEXIST") throw error;
    if (!statSync(path).isDirectory()) throw new Error(`Cannot create ${path}: a file of that name exists`);
  }
  return undefined;
}
