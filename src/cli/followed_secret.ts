/**
 * A push receiver's secret (`--push-token-file`, `--secret-file`) read again whenever its file changes: a token fixed
 * or rotated in the file reaches a running listen at its next push, where listen went on pushing the one it read at
 * its start, refused (401) until someone restarted it (red team 63, OpenClaw's hooks token). A file that cannot be
 * read at that moment, or holds no one token (written half-way), leaves the last good one in use until it changes
 * again.
 */
import { statSync } from "node:fs";
import { readSecret } from "./args.ts";

/** As `readSecret` at start (its refusals included); then a reader of the secret as the file holds it now. */
export function followedSecret(
  file: string | undefined,
  fromEnv: string | undefined,
  envName: string,
  use: "header" | "key" = "header",
): (() => string) | undefined {
  const first = readSecret(file, fromEnv, envName, use);
  if (first === undefined) return undefined;
  if (file === undefined) return () => first;
  let secret = first;
  let seen = fileStamp(file);
  return () => {
    const now = fileStamp(file);
    if (now === undefined || now === seen) return secret;
    seen = now;
    try {
      secret = readSecret(file, undefined, envName, use) ?? secret;
    } catch {
      // Unreadable, or not one token: the last good one stays.
    }
    return secret;
  };
}

/** What changes when a file is written or replaced (a rename, as editors and `install` do, gives a new inode). */
function fileStamp(file: string): string | undefined {
  try {
    const { ino, size, mtimeMs } = statSync(file);
    return `${ino}:${size}:${mtimeMs}`;
  } catch {
    return undefined;
  }
}
