/**
 * An A2A client that behaves as Hermes Agent's `a2a_call` tool (NousResearch/hermes-agent
 * plugins/platforms/a2a/tools.py, `_send_task`, on stdlib urllib), written from what that code sends and reads: the
 * card at the peer URL (with the token); as the card offers streaming, one `SendStreamingMessage` with
 * `A2A-Version: 1.0` and a v1.0 text part that names its `mediaType`; frames read until a terminal state, artifact
 * parts gathered; a stream that ends or breaks before one is sent again, the same body (same `messageId`), as a
 * blocking `SendMessage`.
 */

export interface HermesPeer {
  /** The peer URL configured in `a2a_agents` (interop's `/a2a/AGENT`). */
  url: string;
  token: string | undefined;
}

export interface HermesCallResult {
  text: string;
  contextId: string;
  state: string;
  /** Whether the stream broke and the call was sent again as a blocking SendMessage. */
  resent: boolean;
}

const TERMINAL_STATES = new Set(["TASK_STATE_COMPLETED", "TASK_STATE_FAILED", "TASK_STATE_CANCELED", "TASK_STATE_REJECTED"]);

const STREAM_FALLBACK_STATUSES = new Set([404, 405, 501]);

type Json = Record<string, any>;

/** tools.py `_reply_text_from_result`: the artifacts' text first, else the status message's. */
function replyText(task: Json): string {
  for (const artifact of task.artifacts ?? []) {
    const text = (artifact.parts ?? []).map((part: Json) => part.text).filter((value: unknown) => typeof value === "string");
    if (text.length > 0) return text.join("\n");
  }
  return (task.status?.message?.parts ?? []).map((part: Json) => part.text ?? "").join("\n");
}

/**
 * `_send_task_stream`: the terminal task the stream ends with, or undefined when it ends or breaks before one
 * (`breakAfter` frames: the test's way to break the connection, as a network would).
 */
async function streamed(rpcUrl: string, body: Json, headers: Record<string, string>, breakAfter: number): Promise<Json | undefined> {
  const connection = new AbortController();
  const response = await fetch(rpcUrl, {
    method: "POST",
    headers: { ...headers, accept: "text/event-stream" },
    body: JSON.stringify({ ...body, method: "SendStreamingMessage" }),
    signal: connection.signal,
  });
  // A 404, 405 or 501 reads to Hermes as "no streaming here": it asks again by SendMessage.
  if (STREAM_FALLBACK_STATUSES.has(response.status)) {
    await response.body?.cancel();
    return undefined;
  }
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  let frames = 0;
  let latest: Json | undefined;
  const artifactParts: Json[] = [];
  let buffer = "";
  const decoder = new TextDecoder();
  try {
    for await (const chunk of response.body!) {
      buffer += decoder.decode(chunk, { stream: true });
      let end: number;
      while ((end = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, end).trim();
        buffer = buffer.slice(end + 1);
        if (!line.startsWith("data:")) continue;
        const frame = JSON.parse(line.slice(5));
        if (frame.error) throw new Error(`Peer returned an error: ${frame.error.message}`);
        const result = frame.result ?? {};
        if (result.artifactUpdate) artifactParts.push(...(result.artifactUpdate.artifact?.parts ?? []));
        else if (result.statusUpdate) latest = { ...latest, status: result.statusUpdate.status, contextId: result.statusUpdate.contextId };
        else if (result.task) latest = result.task;
        if (latest !== undefined && TERMINAL_STATES.has(latest.status?.state)) {
          return artifactParts.length > 0 ? { ...latest, artifacts: [{ parts: artifactParts }] } : latest;
        }
        if (++frames >= breakAfter) {
          connection.abort();
          return undefined;
        }
      }
    }
  } catch (error) {
    // A broken connection is a transport failure to Hermes (urllib's IncompleteRead): the call is sent again.
    if (error instanceof Error && error.message.startsWith("Peer returned")) throw error;
  }
  return undefined;
}

/**
 * `a2a_call(agent, message, context_id)`. `breakStreamAfter` frames, the stream's connection is broken; `onResend`
 * is told when the blocking SendMessage that follows goes out.
 */
export async function hermesCall(
  peer: HermesPeer,
  text: string,
  options: { contextId?: string; breakStreamAfter?: number; onResend?: () => void } = {},
): Promise<HermesCallResult> {
  const headers: Record<string, string> = {
    "user-agent": "Hermes-A2A/1.0",
    "content-type": "application/json",
    "a2a-version": "1.0",
    ...(peer.token === undefined ? {} : { authorization: `Bearer ${peer.token}` }),
  };
  const cardResponse = await fetch(`${peer.url.replace(/\/+$/, "")}/.well-known/agent-card.json`, { headers });
  const card = cardResponse.ok ? await cardResponse.json() : undefined;
  const rpcUrl = card?.supportedInterfaces?.find((i: Json) => i.protocolBinding === "JSONRPC")?.url ?? peer.url;
  const contextId = options.contextId ?? `ctx-${crypto.randomUUID().slice(0, 16)}`;
  const body = {
    jsonrpc: "2.0",
    id: `task-${crypto.randomUUID().slice(0, 16)}`,
    method: "SendMessage",
    params: {
      message: { role: "ROLE_USER", parts: [{ text, mediaType: "text/plain" }], messageId: crypto.randomUUID(), contextId },
    },
  };
  if (card?.capabilities?.streaming) {
    const task = await streamed(rpcUrl, body, headers, options.breakStreamAfter ?? Infinity);
    if (task !== undefined) return { text: replyText(task), contextId: task.contextId, state: task.status.state, resent: false };
    options.onResend?.();
  }
  const response = await fetch(rpcUrl, { method: "POST", headers: { ...headers, accept: "application/json" }, body: JSON.stringify(body) });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const answer = await response.json();
  if (answer.error) throw new Error(`Peer returned an error: ${answer.error.message}`);
  const task = answer.result.task ?? answer.result;
  return { text: replyText(task), contextId: task.contextId, state: task.status?.state ?? "", resent: true };
}
