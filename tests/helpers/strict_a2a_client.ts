/**
 * An A2A client that behaves as Hermes Agent's strict outbound client (NousResearch/hermes-agent
 * plugins/platforms/a2a/client.py, `NamedPeerClient.ask`, with a2a-sdk 1.0's card resolver and JSON-RPC transport),
 * written from what that code checks and sends: the card from the peer URL's origin, refused unless it promises
 * exactly what the client speaks; one blocking `SendMessage` with a bearer token; the answer a COMPLETED task with
 * text artifacts.
 */

/** What a Hermes peer entry holds: the A2A endpoint URL and the bearer token it presents. */
export interface StrictPeer {
  url: string;
  token: string | undefined;
}

/** A refusal, with the sentence Hermes's client raises for it. */
export class StrictClientError extends Error {
  override name = "StrictClientError";
}

/** The v1.0 `AgentCard` fields (a2a.proto): a reader that refuses unknown fields refuses a card with any other. */
const CARD_FIELDS = new Set([
  "name",
  "description",
  "supportedInterfaces",
  "provider",
  "version",
  "documentationUrl",
  "capabilities",
  "securitySchemes",
  "securityRequirements",
  "defaultInputModes",
  "defaultOutputModes",
  "skills",
  "signatures",
  "iconUrl",
]);

/** config.validate_peer_url: the URL without a trailing slash (http only for loopback, as the tests use). */
function normalizePeerUrl(value: string): string {
  const url = new URL(value.trim());
  if (url.search !== "" || url.hash !== "" || url.username !== "" || url.password !== "") {
    throw new StrictClientError("peer URL must not contain credentials, a query or a fragment");
  }
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, "")}`;
}

/** GET `<origin>/.well-known/agent-card.json`, without a token, following no redirect. */
export async function fetchStrictCard(peer: StrictPeer): Promise<Record<string, any>> {
  const origin = new URL(peer.url).origin;
  const response = await fetch(`${origin}/.well-known/agent-card.json`, { redirect: "manual" });
  if (!response.ok) throw new StrictClientError(`A2A peer card request failed (HTTP ${response.status})`);
  const card = await response.json();
  validateCard(card, normalizePeerUrl(peer.url));
  return card;
}

/** client.py `_validate_card`, on the card as the SDK parsed it. */
export function validateCard(card: Record<string, any>, expectedUrl: string): void {
  const unknown = Object.keys(card).filter((key) => !CARD_FIELDS.has(key));
  if (unknown.length > 0) {
    throw new StrictClientError(`A2A peer card has fields a v1.0 reader does not know: ${unknown.join(", ")}`);
  }
  const capabilities = card.capabilities ?? {};
  if (capabilities.streaming || capabilities.pushNotifications || capabilities.extendedAgentCard) {
    throw new StrictClientError("A2A peer card enables unsupported capabilities");
  }
  const textOnly = (modes: unknown) => Array.isArray(modes) && modes.length === 1 && modes[0] === "text/plain";
  if (!textOnly(card.defaultInputModes) || !textOnly(card.defaultOutputModes)) {
    throw new StrictClientError("A2A peer card modes are unsupported");
  }
  const interfaces = card.supportedInterfaces ?? [];
  if (
    interfaces.length !== 1 || String(interfaces[0].protocolBinding).toUpperCase() !== "JSONRPC" ||
    interfaces[0].protocolVersion !== "1.0" || normalizePeerUrl(interfaces[0].url) !== expectedUrl
  ) {
    throw new StrictClientError("A2A peer card interface does not match configuration");
  }
  const scheme = card.securitySchemes?.bearer?.httpAuthSecurityScheme;
  if (typeof scheme?.scheme !== "string" || scheme.scheme.toLowerCase() !== "bearer") {
    throw new StrictClientError("A2A peer card requires unsupported authentication");
  }
  const requirements = card.securityRequirements ?? [];
  if (requirements.length !== 1 || Object.keys(requirements[0].schemes ?? {}).join() !== "bearer") {
    throw new StrictClientError("A2A peer card requires unsupported authentication");
  }
}

/** What `ask` returns: the final task and its artifacts' texts. */
export interface StrictAnswer {
  task: Record<string, any>;
  texts: string[];
}

/**
 * Hermes's HTTP client reads with `httpx.Timeout(30.0, connect=10.0)` (`NamedPeerClient._http`), which a2a-sdk 1.0's
 * JSON-RPC transport keeps for SendMessage: the answer's head, and then each chunk of its body, must come within
 * 30 s of the last, or the call fails with ReadTimeout, whatever is left of its 120 s.
 */
export const HERMES_READ_TIMEOUT_MS = 30_000;

/**
 * `NamedPeerClient.ask`: the card (checked), then one blocking `SendMessage` (`streaming=False, polling=False`)
 * to the card's interface with `Authorization: Bearer`, within the client's 120 s and with no more than
 * `readTimeoutMs` between bytes read; the result must be a COMPLETED task with ids of 1-256 characters and at least
 * one non-blank text artifact, and nothing else.
 */
export async function strictAsk(
  peer: StrictPeer,
  text: string,
  contextId?: string,
  { readTimeoutMs = HERMES_READ_TIMEOUT_MS }: { readTimeoutMs?: number } = {},
): Promise<StrictAnswer> {
  const card = await fetchStrictCard(peer);
  const endpoint: string = card.supportedInterfaces[0].url;
  const message = {
    role: "ROLE_USER",
    messageId: crypto.randomUUID().replaceAll("-", ""),
    parts: [{ text }],
    ...(contextId === undefined ? {} : { contextId }),
  };
  const silent = new AbortController();
  let idle = setTimeout(() => silent.abort(), readTimeoutMs);
  const readSoon = () => {
    clearTimeout(idle);
    idle = setTimeout(() => silent.abort(), readTimeoutMs);
  };
  const response = await fetch(endpoint, {
    method: "POST",
    redirect: "manual",
    signal: AbortSignal.any([AbortSignal.timeout(120_000), silent.signal]),
    headers: {
      "content-type": "application/json",
      "a2a-version": "1.0",
      ...(peer.token === undefined ? {} : { authorization: `Bearer ${peer.token}` }),
    },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: crypto.randomUUID(),
      method: "SendMessage",
      params: { message, configuration: {} },
    }),
  }).catch((error) => {
    clearTimeout(idle);
    throw silent.signal.aborted ? new StrictClientError("A2A peer request failed (ReadTimeout)") : error;
  });
  let body = "";
  try {
    const decoder = new TextDecoder();
    for await (const chunk of response.body ?? []) {
      readSoon();
      body += decoder.decode(chunk, { stream: true });
    }
  } catch (error) {
    throw silent.signal.aborted ? new StrictClientError("A2A peer request failed (ReadTimeout)") : error;
  } finally {
    clearTimeout(idle);
  }
  if (!response.ok) throw new StrictClientError(`A2A peer request failed (HTTP ${response.status})`);
  const answer = JSON.parse(body);
  if (answer.error !== undefined) {
    throw new StrictClientError(`A2A peer request failed: ${answer.error.code} ${answer.error.message}`);
  }
  const task = answer.result?.task;
  if (task === undefined) throw new StrictClientError("A2A peer returned no task");
  const identifier = (value: unknown) => typeof value === "string" && value.trim() !== "" && value.trim().length <= 256;
  if (!identifier(task.id) || !identifier(task.contextId)) {
    throw new StrictClientError("A2A peer returned invalid task identifiers");
  }
  if (task.status?.state !== "TASK_STATE_COMPLETED") {
    throw new StrictClientError("A2A peer task did not complete successfully");
  }
  const texts: string[] = [];
  for (const artifact of task.artifacts ?? []) {
    for (const part of artifact.parts ?? []) {
      if (typeof part.text !== "string") throw new StrictClientError("A2A peer returned a non-text artifact");
      if (part.text.trim() === "") throw new StrictClientError("A2A peer returned an empty text artifact");
      texts.push(part.text);
    }
  }
  if (texts.length === 0) throw new StrictClientError("A2A peer returned no text artifact");
  return { task, texts };
}
