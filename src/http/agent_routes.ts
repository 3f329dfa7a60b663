/** `/agents`: the operator lists, adds and removes agents (an admin token when the broker has tokens). */
import { authorizeAdmin, type Caller } from "../auth/authenticator.ts";
import type { Broker } from "../broker/broker.ts";
import { parseAgentName } from "../message.ts";
import type { IncomingRequest, OutgoingResponse } from "../runtime/types.ts";
import { reportClock } from "../status_report.ts";
import { parseFlag } from "./query_params.ts";
import { jsonResponse } from "./responses.ts";

/** One agent as `GET /agents` lists it. */
export interface AgentEntry {
  agent: string;
  pending: number;
  /** ISO 8601, or null if the agent never made a request. */
  last_seen: string | null;
  /** Whether a stream (SSE, ntfy or `listen`) is connected now. */
  stream: boolean;
  online: boolean;
  dead_letters: number;
}

/** `GET /agents`, `POST /agents?agent=NAME` (201 when created, 200 when it existed), `DELETE /agents?agent=NAME[&force=1]`. */
export async function agentsRoute(broker: Broker, request: IncomingRequest, caller: Caller): Promise<OutgoingResponse> {
  authorizeAdmin(caller, `${request.method} /agents`);
  if (request.method === "GET") {
    const report = await broker.currentStatus();
    const agents: AgentEntry[] = Object.entries(report.agents).map(([agent, status]) => ({
      agent,
      pending: status.pending,
      last_seen: status.last_seen,
      stream: status.streams > 0,
      online: status.online,
      dead_letters: status.dead_letters,
    })).sort((a, b) => a.agent < b.agent ? -1 : a.agent > b.agent ? 1 : 0);
    // The broker's clock, for a client to show `last_seen` as a time ago without trusting its own.
    return jsonResponse(200, { agents, now: new Date(reportClock(report)).toISOString() });
  }
  const agent = parseAgentName(request.url.searchParams.get("agent"), "agent");
  if (request.method === "POST") {
    const created = await broker.addAgent(agent);
    return jsonResponse(created ? 201 : 200, { agent, created });
  }
  const force = parseFlag(request.url.searchParams.get("force"), "force", "force=1 (delete what is pending, end its stream)");
  const deleted = await broker.removeAgent(agent, force);
  return jsonResponse(200, { agent, removed: true, deleted });
}
