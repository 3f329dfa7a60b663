/** A2A clients for tests: the official SDK's, authenticated with an interop token, and raw JSON-RPC calls. */
import { SendMessageRequest, Task, taskStateToJSON } from "@a2a-js/sdk";
import { type Client, ClientFactory, ClientFactoryOptions, JsonRpcTransportFactory } from "@a2a-js/sdk/client";

/** The card URL of `agent` on a broker. */
export function cardUrl(brokerUrl: string, agent: string): string {
  return `${brokerUrl}/a2a/${agent}/.well-known/agent-card.json`;
}

/** A fetch that sends `Authorization: Bearer token` (none when token is undefined). */
export function fetchWithToken(token: string | undefined): typeof fetch {
  return (input, init) => {
    const headers = new Headers(init?.headers);
    if (token !== undefined) headers.set("authorization", `Bearer ${token}`);
    return fetch(input, { ...init, headers });
  };
}

/** The official SDK client for `agent`, made from its card (`ClientFactory`), sending `token`. */
export async function sdkClient(brokerUrl: string, agent: string, token: string | undefined, polling = true): Promise<Client> {
  const factory = new ClientFactory(ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
    transports: [new JsonRpcTransportFactory({ fetchImpl: fetchWithToken(token) })],
    clientConfig: { polling },
  }));
  return await factory.createFromUrl(cardUrl(brokerUrl, agent), "");
}

/** SendMessage params with one text part, as the SDK takes them. */
export function textMessage(text: string, messageId = crypto.randomUUID(), contextId?: string) {
  return SendMessageRequest.fromJSON({
    message: { messageId, role: "ROLE_USER", parts: [{ text }], ...(contextId === undefined ? {} : { contextId }) },
  });
}

/** An SDK task (or message) in its JSON form, with the state as its name. */
export function taskJson(result: unknown): { id: string; contextId: string; status: { state: string; message?: { parts: Array<{ text?: string }> } }; artifacts?: Array<{ parts: Array<{ text?: string }> }> } {
  return Task.toJSON(result as Task) as ReturnType<typeof taskJson>;
}

export { taskStateToJSON };

/** One raw JSON-RPC call to `POST /a2a/<agent>`; resolves with the HTTP status and the parsed body. */
export async function rpc(
  brokerUrl: string,
  agent: string,
  token: string | undefined,
  method: string,
  params: unknown,
  headers: Record<string, string> = {},
): Promise<{
  status: number;
  headers: Headers;
  body: { result?: Record<string, unknown>; error?: { code: number; message: string; data?: unknown } };
}> {
  const response = await fetchWithToken(token)(`${brokerUrl}/a2a/${agent}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  });
  return { status: response.status, headers: response.headers, body: await response.json() };
}

/** `agent`'s pending messages (`peek`: left pending, else taken), read with its token. */
export async function inboxOf(brokerUrl: string, agent: string, token: string, peek = false): Promise<Array<Record<string, any>>> {
  const response = await fetchWithToken(token)(`${brokerUrl}/poll?agent=${agent}${peek ? "&peek=1" : ""}`);
  if (response.status !== 200) throw new Error(`poll of ${agent} answered ${response.status}: ${await response.text()}`);
  return await response.json();
}

/** `agent` replies `text` to message `messageId` (`reply_to`), with its token. */
export async function replyAs(brokerUrl: string, agent: string, token: string, messageId: number, text: string): Promise<void> {
  const response = await fetchWithToken(token)(`${brokerUrl}/broadcast?from=${agent}&reply_to=${messageId}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ text }),
  });
  if (response.status !== 200) throw new Error(`the reply of ${agent} answered ${response.status}: ${await response.text()}`);
}
