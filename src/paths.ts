/** Where interop keeps its files by default: per user, following the XDG base directory spec. */
import { homedir } from "node:os";
import { basename, join } from "node:path";
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

/** The single executable names itself; from source, the installed `interop` on PATH is meant. */
export function interopCommand(): string {
  return basename(process.execPath) === "interop" ? process.execPath : "interop";
}
