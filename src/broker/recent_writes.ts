/**
 * What an agent's streams wrote lately, so that a client resuming without an id (ntfy's reconnect without
 * `since=`, the old EventSource without `Last-Event-ID`) gets again what a dead connection may have swallowed.
 *
 * A stream write proves nothing: the bytes may sit in a relay or a dead link until the client's read timeout
 * (Hermes's ntfy adapter: 90 s, then up to 60 s of backoff). So a resume without an id starts from the first
 * message written within the resume window before the previous stream ended; a client that de-duplicates by id
 * sees each message once, any other at least once. The broker keeps each agent's replay point in the store (one it
 * owns), so the window survives a restart.
 *
 * What a stream was sent again at its start is passed on like its own writes (its link may have died too), except
 * to a stream that replaces it before its client could have noticed a dead link: two id-less readers of one inbox
 * replacing each other would otherwise hand the window back and forth at every reconnect, refreshed each time.
 * What a restarted broker restores keeps the times its messages were first written (`keptWrites`), and ages from
 * them however often it is sent again: dated at each restart, restarts less than a window apart sent the same
 * messages at every one, for ever, and Hermes's ntfy adapter, which forgets an id 300 s after it saw it, handled all
 * of them again (red team 61: 1,100 messages over four restarts); left out of the next restart's point instead, they
 * were lost when that restart cut off the stream they were sent again on, its link dead (red team 62).
 *
 * Its times are monotonic (`performance.now`), which only this process compares; the store keeps ids with wall-clock
 * times. On the wall clock, a step forward between a write and the stream's end put the write out of the window (not
 * sent again: lost if the dead link swallowed it), and a step back kept old writes in it (sent again).
 */
import type { AgentName } from "../message.ts";

/** One second's first write: coarse on purpose, so a busy agent's log holds at most one entry a second. */
interface Entry {
  second: number;
  firstId: number;
  /** Written before a restart (`restore`): it keeps its time when a stream sends it again. */
  restored?: true;
}

/** Where a resume sends again from, and when (ms) what follows was written or last sent again: what the store keeps. */
export interface KeptWrite {
  firstId: number;
  at: number;
}

/** The most writes kept for a restart per agent: past it, neighbours are merged (the later time kept: sent again, never lost). */
const MAX_KEPT_WRITES = 32;

interface AgentLog {
  /** Messages written for the first time, and those a restarted broker restored (a stream's replay is in `resent`). */
  entries: Entry[];
  /** The agent's last stream, when it started by sending again what this process wrote after `after`: when it opened (ms). */
  resent: { after: number; at: number } | undefined;
  /** When the agent's last stream ended (ms), or undefined while one is open. */
  endedAt: number | undefined;
}

export class RecentWrites {
  #windowMs: number;
  #noticeMs: number;
  #logs = new Map<AgentName, AgentLog>();

  /**
   * `noticeMs`: the least time a client takes to notice a dead link, the heartbeat interval (a client that timed
   * out sooner would drop every quiet, healthy stream).
   */
  constructor(windowMs: number, noticeMs: number) {
    this.#windowMs = windowMs;
    this.#noticeMs = noticeMs;
  }

  #log(agent: AgentName): AgentLog {
    let log = this.#logs.get(agent);
    if (log === undefined) this.#logs.set(agent, log = { entries: [], resent: undefined, endedAt: undefined });
    return log;
  }

  /**
   * A stream for `agent` wrote messages from `firstId` on for the first time, at `now` (ms). True when the log
   * changed (at most once a second), so `replayAfter` may have moved.
   */
  wrote(agent: AgentName, firstId: number, now: number): boolean {
    if (this.#windowMs === 0) return false;
    const log = this.#log(agent);
    const second = Math.floor(now / 1000);
    const { entries } = log;
    if (entries.length > 0 && entries[entries.length - 1].second === second) return false;
    entries.push({ second, firstId });
    // Only while a stream writes does the log grow, so only then is it trimmed to the window.
    const oldest = Math.floor((now - this.#windowMs) / 1000);
    if (entries[0].second < oldest) log.entries = entries.filter((entry) => entry.second >= oldest);
    return true;
  }

  /**
   * The broker restarted at `now` (ms) and the store kept `writes` for `agent` (`keptWrites`, their times in this
   * process's clock): the stream that wrote those messages ended with the old broker, so a resume without an id
   * starts at the first still in the window, as it would have before. False with no window (`--resume-window 0`):
   * nothing is kept.
   */
  restore(agent: AgentName, writes: KeptWrite[], now: number): boolean {
    if (this.#windowMs === 0) return false;
    const entries: Entry[] = writes.map(({ firstId, at }) => ({ second: Math.floor(at / 1000), firstId, restored: true }));
    this.#logs.set(agent, { entries, resent: undefined, endedAt: now });
    return true;
  }

  /**
   * A stream for `agent` opened at `now` (ms): until it ends, the window counts back from the next resume. With
   * `resentAfter`, it starts by sending again what came after that id, which covers everything logged before it:
   * what this process wrote is dated now, what a restarted broker restored keeps its time.
   */
  opened(agent: AgentName, now: number, resentAfter?: number): void {
    const log = resentAfter !== undefined && this.#windowMs > 0 ? this.#log(agent) : this.#logs.get(agent);
    if (log === undefined) return;
    if (resentAfter !== undefined) {
      const from = this.#from(log, now);
      const ours = this.#inWindow(log, now, true).filter((source) => !source.restored);
      log.entries = log.entries.filter((entry) => entry.restored && entry.second >= from);
      // With restored writes in the window, what it sends again of this process's own is dated now, the rest by them.
      const after = log.entries.length === 0 ? resentAfter : pointBefore(ours);
      log.resent = after === undefined ? undefined : { after, at: now };
    } else {
      log.resent = undefined;
    }
    log.endedAt = undefined;
  }

  /** The agent's stream ended at `now` (ms): what it wrote in the window before now stays unconfirmed. */
  ended(agent: AgentName, now: number): void {
    const log = this.#logs.get(agent);
    if (log !== undefined) log.endedAt ??= now;
  }

  /**
   * Where a resume without an id at `now` must start to cover what the last stream may have lost: just before
   * the first message it wrote in the window before it ended (or before now, while it is still open); undefined
   * when it wrote nothing there. `replacing`: the resume replaces that stream if it is still open, and what that
   * stream was sent again is passed on only if it was open long enough for a dead link to be noticed: a stream
   * replaced sooner was replaced by another reader, not by its own client coming back after a read timeout.
   */
  replayAfter(agent: AgentName, now: number, replacing = false): number | undefined {
    const log = this.#logs.get(agent);
    return log === undefined ? undefined : pointBefore(this.#inWindow(log, now, replacing));
  }

  /**
   * What the store keeps for the agent at `now`, for a broker restarted after it (`restore`): what a resume would
   * send again from (`replayAfter`), each with its time, oldest id first; undefined when nothing.
   */
  keptWrites(agent: AgentName, now: number): KeptWrite[] | undefined {
    const log = this.#logs.get(agent);
    if (log === undefined) return undefined;
    // A second's entry is dated at its end: restored a moment later, it is sent again rather than aged out early.
    const writes = this.#inWindow(log, now, false).map(({ firstId, second, at }) => ({ firstId, at: at ?? second * 1000 + 999 }));
    writes.sort((a, b) => a.firstId - b.firstId);
    while (writes.length > MAX_KEPT_WRITES) {
      for (let i = 0; i + 1 < writes.length; i++) writes.splice(i, 2, { firstId: writes[i].firstId, at: Math.max(writes[i].at, writes[i + 1].at) });
    }
    return writes.length === 0 ? undefined : writes;
  }

  /** Every agent with a log. */
  agents(): Iterable<AgentName> {
    return this.#logs.keys();
  }

  /** The first second a resume at `now` looks back to: the window before the last stream ended, or before now. */
  #from(log: AgentLog, now: number): number {
    return Math.floor(((log.endedAt ?? now) - this.#windowMs) / 1000);
  }

  /** What a resume at `now` must send again from: the log's entries, and the last stream's replay, in the window. */
  #inWindow(log: AgentLog, now: number, replacing: boolean): WindowSource[] {
    const from = this.#from(log, now);
    const sources: WindowSource[] = log.entries.filter((entry) => entry.second >= from);
    const { resent } = log;
    const young = replacing && log.endedAt === undefined && resent !== undefined && now - resent.at < this.#noticeMs;
    if (resent !== undefined && !young && Math.floor(resent.at / 1000) >= from) {
      sources.push({ firstId: resent.after + 1, second: Math.floor(resent.at / 1000), at: resent.at });
    }
    return sources;
  }

  /**
   * A client named what it has (an id or a time): the writes before are its business, not a replay's. True when
   * the agent had a log.
   */
  forget(agent: AgentName): boolean {
    return this.#logs.delete(agent);
  }
}

/** Something a resume sends again from: a logged write, or the last stream's replay (`resent`, with its time in ms). */
interface WindowSource {
  firstId: number;
  second: number;
  at?: number;
  restored?: true;
}

/** The id just before the least in `sources` (not the first's: right whatever order they came in), or undefined. */
function pointBefore(sources: WindowSource[]): number | undefined {
  let first = Infinity;
  for (const source of sources) first = Math.min(first, source.firstId);
  return first === Infinity ? undefined : first - 1;
}
