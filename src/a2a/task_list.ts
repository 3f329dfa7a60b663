/** ListTasks: the tasks one caller sent to one agent, newest first, filtered and paged by message id. */
import type { Broker } from "../broker/broker.ts";
import { heldAnswer } from "../http/responses.ts";
import type { MessageAnswer } from "../broker/message_answer.ts";
import type { AgentName } from "../message.ts";
import { A2A_ERROR, A2aError, type A2aTask, type ProtocolVersion, type TaskState } from "./protocol.ts";
import { contextIdOf } from "./message_ids.ts";
import { taskKeyPrefix, taskOfListed } from "./tasks.ts";
import { parseTaskState, toV03Task } from "./v03_shapes.ts";

const DEFAULT_PAGE_SIZE = 50;
const MAX_PAGE_SIZE = 100;
/**
 * Messages one ListTasks reads at most (filters may skip most of them); past it, the page ends with a token. Each
 * costs a few store reads, so the cap bounds what one call can make the broker do (1,000 let 100 calls at once
 * hold up every other request for seconds).
 */
const MAX_SCANNED = 200;
/**
 * The caller's tasks sent to `agent`, newest first, by `contextId` and `status` when given; paged by message id. As
 * the answer's body: the result's JSON text between `around.open` and `around.close` (the JSON-RPC answer's), each
 * task encoded once, in the version's shape, to hold the page to the budget and to answer (encoded again in the
 * answer, a page of large tasks cost twice). Read, encoded and made bytes a slice at a time, as a /poll's answer is
 * (`MessageAnswer`): built in one go, a page of 16 Mi characters held every other request up while it was. The page
 * holds the memory for answers not read yet as the caller's (`Broker.answer`), as a /poll's answer holds it, until
 * `written` gives it back.
 */
export async function listTasks(
  broker: Broker,
  sender: AgentName,
  agent: AgentName,
  params: Record<string, unknown>,
  version: ProtocolVersion,
  around: { open: string; close: string },
): Promise<{ body: string | Uint8Array<ArrayBuffer>; written(): void }> {
  const query = parseQuery(params);
  // Held to the budget of a /poll answer, as the tasks carry their messages: a page ends early, with its token. And
  // to the memory for answers not read yet: 30 unread pages of 1 MiB tasks kept /status waiting 24 s (review27).
  const answer = broker.answer(({ task }: ListedTask) => JSON.stringify(version === "1.0" ? task : toV03Task(task)), sender);
  // Reserved as a /poll's read is: a call's store reads hold messages whole whether or not their tasks are listed (a
  // filter may pass them by), and calls that all passed the hold's check read at once, however many came together.
  return await heldAnswer(answer, async () => ({ body: await answer.reserved(() => listedPage(broker, sender, agent, query, answer, around)) }));
}

/** What one ListTasks call asks for, checked before anything is read. */
interface TaskQuery {
  contextId: string | undefined;
  state: TaskState | undefined;
  pageSize: number;
  /** The id the page starts below (a `nextPageToken`). */
  before: number;
  /** Only tasks whose status changed at or after this time (ms), when given. */
  updatedSince: number | undefined;
  includeArtifacts: boolean;
  historyLength: number | undefined;
}

/**
 * ListTasks' params, by their proto JSON names; each may also come by its proto field name (`page_size`), as proto JSON
 * parsers (the A2A SDK's among them) read it. Any other is refused: a filter ignored would list tasks the caller left out.
 */
const QUERY_FIELDS: Record<string, string> = {
  tenant: "tenant",
  contextId: "context_id",
  status: "status",
  pageSize: "page_size",
  pageToken: "page_token",
  historyLength: "history_length",
  statusTimestampAfter: "status_timestamp_after",
  includeArtifacts: "include_artifacts",
};

/** `params` with every field by its proto JSON name; -32602 naming a field ListTasks does not know. */
function queryFields(params: Record<string, unknown>): Record<string, unknown> {
  const byJsonName = Object.fromEntries(Object.entries(QUERY_FIELDS).map(([json, proto]) => [proto, json]));
  const fields: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(params)) {
    const field = name in QUERY_FIELDS ? name : byJsonName[name];
    if (field === undefined) throw invalidParams(`unknown field ${JSON.stringify(name)}; ListTasks takes ${Object.keys(QUERY_FIELDS).join(", ")}`);
    fields[field] = value;
  }
  return fields;
}

/** A whole number given as a JSON number or a string of digits (proto JSON's two spellings of an int32), else NaN. */
function wholeNumber(value: unknown): number {
  if (typeof value === "number") return value;
  return typeof value === "string" && /^\d{1,9}$/.test(value) ? Number(value) : NaN;
}

function parseQuery(params: Record<string, unknown>): TaskQuery {
  const fields = queryFields(params);
  // interop has no tenants: one named would be a filter ignored.
  if (fields.tenant !== undefined && fields.tenant !== "") throw invalidParams("tenant: interop has no tenants; leave it out");
  const contextId = fields.contextId === undefined || fields.contextId === "" ? undefined : fields.contextId;
  if (contextId !== undefined && typeof contextId !== "string") throw invalidParams("contextId must be a string");
  // The proto default (UNSPECIFIED) filters nothing, as an absent status.
  const anyState = fields.status === undefined || fields.status === "" || fields.status === "TASK_STATE_UNSPECIFIED";
  const state = anyState ? undefined : parseTaskState(fields.status);
  if (!anyState && state === undefined) throw invalidParams("status must be a task state");
  const pageSize = fields.pageSize === undefined ? DEFAULT_PAGE_SIZE : wholeNumber(fields.pageSize);
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_PAGE_SIZE) throw invalidParams(`pageSize must be 1-${MAX_PAGE_SIZE}`);
  const token = fields.pageToken === undefined || fields.pageToken === "" ? undefined : String(fields.pageToken);
  if (token !== undefined && !/^\d{1,15}$/.test(token)) throw invalidParams("pageToken must be a nextPageToken from an earlier page");
  const before = token === undefined ? Number.MAX_SAFE_INTEGER : Number(token);
  const after = fields.statusTimestampAfter === undefined || fields.statusTimestampAfter === "" ? undefined : fields.statusTimestampAfter;
  const updatedSince = after === undefined ? undefined : typeof after === "string" ? Date.parse(after) : NaN;
  if (Number.isNaN(updatedSince)) throw invalidParams('statusTimestampAfter must be an ISO 8601 time, as "2026-12-01T10:00:00Z"');
  const includeArtifacts = fields.includeArtifacts ?? false;
  if (typeof includeArtifacts !== "boolean") throw invalidParams("includeArtifacts must be true or false");
  // Checked now, not only when a task is listed: a page with none would let a bad one pass.
  return { contextId, state, pageSize, before, updatedSince, includeArtifacts, historyLength: historyLengthOf(fields.historyLength) };
}

/** The page's JSON text within `around`: the tasks that fit in `answer`, and the token for the rest. */
async function listedPage(
  broker: Broker,
  sender: AgentName,
  agent: AgentName,
  query: TaskQuery,
  answer: MessageAnswer<ListedTask>,
  around: { open: string; close: string },
): Promise<string | Uint8Array<ArrayBuffer>> {
  const { contextId, state, pageSize, updatedSince, includeArtifacts } = query;
  const listed: ListedTask[] = [];
  let before = query.before;
  let scanned = 0;
  let exhausted = true;
  for await (const envelope of broker.tasks.sentWithKeyPrefix(taskKeyPrefix(agent), { sender, recipient: agent }, query.before)) {
    if (scanned === MAX_SCANNED) {
      exhausted = false;
      break;
    }
    // A task's context is its message's: one of another context is passed by without reading what became of it.
    if (contextId === undefined || contextIdOf(envelope) === contextId) {
      const task = await taskOfListed(broker, envelope);
      const since = updatedSince === undefined || Date.parse(task.status.timestamp) >= updatedSince;
      if ((state === undefined || task.status.state === state) && since) {
        const shown = withHistory(includeArtifacts ? task : { ...task, artifacts: undefined }, query.historyLength);
        const item = { id: envelope.id, task: shown };
        if ((await answer.fitSliced([item])).length === 0) break;
        listed.push(item);
      }
    }
    scanned++;
    before = envelope.id;
    if (listed.length === pageSize) {
      exhausted = false;
      break;
    }
  }
  const more = !exhausted || answer.cut;
  const close = `],"nextPageToken":${JSON.stringify(more ? String(before) : "")},"pageSize":${pageSize}}`;
  return await answer.body(listed, `${around.open}{"tasks":[`, ",", close + around.close);
}

/** A task on the page, by its message's id (how the answer's budget names what it encoded). */
interface ListedTask {
  id: number;
  task: A2aTask;
}

/** A task with its history cut to `historyLength` (0: none; absent: all), as GetTask, CancelTask and ListTasks answer it. */
export function withHistory(task: A2aTask, historyLength: unknown): A2aTask {
  const length = historyLengthOf(historyLength);
  if (length === undefined) return task;
  return { ...task, history: length === 0 ? undefined : task.history?.slice(-length) };
}

/** A `historyLength` param: undefined when absent, else a whole number, 0 or more (-32602 otherwise). */
function historyLengthOf(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  const length = wholeNumber(value);
  if (!Number.isInteger(length) || length < 0) throw invalidParams("historyLength must be a whole number, 0 or more");
  return length;
}

function invalidParams(message: string): A2aError {
  return new A2aError(A2A_ERROR.invalidParams, `Invalid params: ${message}`);
}
