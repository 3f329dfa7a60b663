/** Where interop keeps its files by default: per user, following the XDG base directory spec. */
import { homedir } from "node:os";
import { join } from "node:path";

type Env = Record<string, string | undefined>;

function stateHome(env: Env): string {
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
