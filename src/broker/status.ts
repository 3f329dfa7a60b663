/** Builds `GET /status` from the broker's inboxes: the old bridge's keys plus per-agent detail. */
import process from "node:process";
import type { AgentName } from "../message.ts";
import { runtimeDescription } from "../runtime/serve.ts";
import type { StatusReport } from "../status_report.ts";
import type { InboxRecord } from "../store/store.ts";
import { VERSION } from "../version.ts";

/** An agent counts as online with a stream open or a request within this window. */
export const ONLINE_WINDOW_MS = 60_000;

export interface StatusInput {
  now: number;
  startedAt: number;
  dataDir: string;
  lastId: number;
  inboxes: Iterable<InboxRecord>;
  streaming(agent: AgentName): boolean;
}

export function buildStatus(input: StatusInput): StatusReport {
  const report: StatusReport = {
    service: "interop",
    version: VERSION,
    pid: process.pid,
    uptime_seconds: Math.round((input.now - input.startedAt) / 1000),
    started_at: new Date(input.startedAt).toISOString(),
    data_dir: input.dataDir,
    runtime: runtimeDescription(),
    agents: {},
    queues: {},
    subscribers: {},
    streams: 0,
    last_id: input.lastId,
  };
  for (const inbox of input.inboxes) {
    const streaming = input.streaming(inbox.agent);
    if (streaming) report.streams++;
    report.agents[inbox.agent] = {
      online: streaming || (inbox.lastSeen !== null && input.now - inbox.lastSeen < ONLINE_WINDOW_MS),
      streams: streaming ? 1 : 0,
      pending: inbox.pending,
      delivered_id: inbox.deliveredId,
      last_seen: inbox.lastSeen === null ? null : new Date(inbox.lastSeen).toISOString(),
      dead_letters: inbox.deadLetters,
      expired: inbox.expired,
    };
    report.queues[inbox.agent] = inbox.pending;
    report.subscribers[inbox.agent] = streaming;
  }
  return report;
}
