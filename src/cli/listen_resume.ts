/**
 * Where a restarted `interop listen` resumes (its state file, or the last line of its --out file when that is further
 * on), and the saving of that position as listen goes.
 */
import { rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import process from "node:process";
import type { BrokerClient, StreamPosition } from "../client/broker_client.ts";
import type { CursorFile } from "../client/cursor_file.ts";
import { InteropError } from "../errors.ts";
import type { LockTimes, LockWording } from "../file_lock.ts";
import { type AgentName, fromWire, messageKey } from "../message.ts";
import { makeDirectory } from "../paths.ts";
import { PRIVATE_DIR_MODE } from "../private_files.ts";
import { sleep } from "../sleep.ts";
import { lastMessageInFile } from "./listen_sinks.ts";
import type { Logger } from "./logger.ts";

/**
 * How long a listen waits for another one using its state file: one stopping (a restart's old listen finishing the
 * message in hand) lets go within seconds. A live one refreshes its lock every 5 s; one not refreshed for 15 s
 * while this one waits (its holder frozen or hung, or its pid another process's since) is taken over.
 */
export const STATE_LOCK_TIMES: LockTimes = { waitMs: 20_000, staleMs: 15_000 };

/**
 * What a listen says of another one holding its state file's lock: two listens on one state file each resume after
 * the id the other saved and write what the other wrote (red team 55: 600 lines for 400).
 */
export function stateLockWording(path: string, log: Logger): LockWording {
  return {
    waiting: (who) => log.info(`--state ${path} is in use by another listen (${who}): waiting up to ${STATE_LOCK_TIMES.waitMs / 1000} s for it to stop`),
    busy: (who) =>
      `--state ${path} is in use by another listen (${who}): two listens on one state file repeat each other's ` +
      "messages; stop that one, or give this one its own --state",
  };
}

/** Why a listen stops when another took its state file over while it was frozen (it would write over that one's). */
export function stateTakenOver(path: string): InteropError {
  return new InteropError(
    "data_dir_locked",
    `--state ${path} was taken over by another listen while this one did not run for ${STATE_LOCK_TIMES.staleMs / 1000} s or more (stopped, or hung): stopping`,
  );
}

/**
 * Whether the state file can be written, tried at start with a file beside it: one that cannot be (a directory that
 * cannot be made, a read-only one) would fail after the first message, again at every message, forever.
 */
export function checkWritable(path: string): void {
  const probe = `${path}.${process.pid}.probe`;
  try {
    makeDirectory(dirname(path), PRIVATE_DIR_MODE);
    writeFileSync(probe, "");
    rmSync(probe);
  } catch (cause) {
    throw new InteropError("usage", `Cannot write --state ${path}: ${(cause as Error).message}`, { cause });
  }
}

/** The longest pause between two tries to save a position that could not be saved. */
const SAVE_RETRY_MAX_MS = 5000;

/**
 * Saves each position as listen passes it. One that cannot be saved (a full disk, the file replaced by a directory)
 * is said once and tried again with backoff, and the next message waits until it is saved: listen going on handed
 * on every message again after a restart (red team 53: 30 of 50 `--exec` runs repeated once the disk had room),
 * where waiting repeats one at most. What the stream carried meanwhile waits here, counted delivered by the broker;
 * a restart reads it again from the saved position. A stop (`shutdown`) ends the wait, the position unsaved. The
 * stream waits too, rather than break: a broken one resumed from the old id and wrote that message again at every
 * reconnect.
 */
export function positionSaver(cursor: CursorFile, log: Logger, shutdown: AbortSignal): (position: StreamPosition | undefined) => Promise<void> {
  return async (position) => {
    for (let delay = 100, failing = false;; delay = Math.min(delay * 2, SAVE_RETRY_MAX_MS)) {
      try {
        cursor.save(position);
        if (failing) log.info(`the position is saved to ${cursor.path} again (after message ${position?.id}); listen goes on`);
        return;
      } catch (error) {
        if (!failing) {
          log.warn(
            `cannot save the position to ${cursor.path}: ${(error as Error).message}; the next message waits until it ` +
              "is saved (tried again every few seconds), so that a restart hands on again at most this one",
          );
        }
        failing = true;
      }
      if (shutdown.aborted) return;
      await sleep(delay, shutdown);
    }
  };
}

/**
 * The state file's position, or the output file's last line to the agent when it is further on: a kill between the
 * two writes (the line first, then the state) repeats nothing. Without a state file, that line names no store (the
 * file may hold lines another store's broker sent, whose ids mean other messages here): it counts only when the
 * broker holds that very message (id and creation time) for the agent among its inbox's last HISTORY_CHECK.
 * Otherwise listen starts as without it, and says so.
 */
export async function resumeAfter(
  cursor: CursorFile,
  out: string | undefined,
  context: { agent: AgentName; client: BrokerClient; log: Logger },
): Promise<StreamPosition | undefined> {
  const saved = cursor.load();
  const written = out === undefined ? undefined : lastMessageInFile(out, context.agent);
  if (written === undefined || (saved !== undefined && written.id <= saved.id)) return saved;
  // The line this listen wrote before it was stopped between the two writes: not to be asked of a broker that may be
  // restarting too (chaos: broker and listener killed together), nor looked for among the newest messages only.
  if (saved !== undefined) return { id: written.id, store: saved.store };
  let held: boolean;
  try {
    held = (await context.client.history(context.agent, HISTORY_CHECK)).some((message) =>
      messageKey(fromWire(message)) === written.key
    );
  } catch (error) {
    context.log.warn(`cannot ask the broker whether ${out}'s last line (message ${written.id}) is its own: ${(error as Error).message}`);
    held = false;
  }
  if (held) return { id: written.id, store: undefined };
  context.log.warn(
    `${out}'s last line (message ${written.id}) is not one of ${context.agent}'s messages on this broker's store ` +
      `(another store's broker wrote it, or it is older than the inbox's last ${HISTORY_CHECK}): ` +
      `starting from ${context.agent}'s position on the broker`,
  );
  return undefined;
}

/** How many of the inbox's newest messages the broker is asked for to tie an --out file's last line to its store. */
const HISTORY_CHECK = 1000;
