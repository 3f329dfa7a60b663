/** A stand-in for Hermes's gateway reading interop through its bundled ntfy adapter, configured by its `.env`. */
import assert from "node:assert/strict";

/**
 * Whether Hermes's gateway lets `userId` talk to the agent on the ntfy platform: `_is_user_authorized` in
 * gateway/authz_mixin.py as it runs for a plugin platform whose registry entry names NTFY_ALLOWED_USERS and
 * NTFY_ALLOW_ALL_USERS (plugins/platforms/ntfy/adapter.py). Allowlists are comma-separated, "*" admits everyone,
 * and with no allowlist at all only GATEWAY_ALLOW_ALL_USERS does; otherwise the default is to deny.
 */
export function hermesAuthorizes(env: Record<string, string>, userId: string): boolean {
  const truthy = (name: string) => ["true", "1", "yes"].includes((env[name] ?? "").trim().toLowerCase());
  if (truthy("NTFY_ALLOW_ALL_USERS")) return true;
  const allowlists = [env.NTFY_ALLOWED_USERS, env.GATEWAY_ALLOWED_USERS].map((value) => (value ?? "").trim());
  if (allowlists.every((value) => value === "")) return truthy("GATEWAY_ALLOW_ALL_USERS");
  const allowed = new Set(allowlists.flatMap((value) => value.split(",")).map((id) => id.trim()).filter((id) => id !== ""));
  return allowed.has("*") || allowed.has(userId);
}

/**
 * Behaves like Hermes's bundled ntfy adapter (plugins/platforms/ntfy/adapter.py) under its gateway: GET
 * {server}/{topic}/json?poll=false, newline-delimited events, de-duplication by id, its own echo tag ignored, a
 * text stripped and dropped when blank,
 * reconnect after a pause, no `since=`; publishes plain text with `X-Tags: hermes-agent` and reads the id from the
 * reply. The user a message comes from is the topic it arrived on (ntfy has no sender identity); an authorised
 * message reaches the agent, an unauthorised one gets a pairing code published to NTFY_PUBLISH_TOPIC, as the
 * gateway's default "pair" behaviour does through the adapter's send(). Only the reconnect pause is shorter.
 */
export class HermesLikeClient {
  /** Texts handed to the agent. */
  received: string[] = [];
  /** User ids refused, one per message (each got a pairing code). */
  refused: string[] = [];
  #seen = new Set<string>();
  #abort: AbortController | undefined;
  #loop: Promise<void> | undefined;
  #env: Record<string, string>;

  /** `env` is Hermes's `.env`: NTFY_SERVER_URL, NTFY_TOPIC, NTFY_PUBLISH_TOPIC and the allowlist variables. */
  constructor(env: Record<string, string>) {
    this.#env = env;
  }

  get #server(): string {
    return this.#env.NTFY_SERVER_URL.replace(/\/+$/, "");
  }

  start(): void {
    const abort = new AbortController();
    this.#abort = abort;
    this.#loop = (async () => {
      while (!abort.signal.aborted) {
        try {
          const response = await fetch(`${this.#server}/${this.#env.NTFY_TOPIC}/json?poll=false`, { signal: abort.signal });
          if (response.status === 401 || response.status === 404) throw new Error(`fatal ${response.status}`);
          let buffer = "";
          for await (const chunk of response.body!.pipeThrough(new TextDecoderStream())) {
            buffer += chunk;
            const lines = buffer.split("\n");
            buffer = lines.pop()!;
            for (const line of lines) await this.#onLine(line.trim());
          }
        } catch {
          // Stream error: reconnect after the pause, as the adapter does.
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    })();
  }

  async stop(): Promise<void> {
    this.#abort?.abort();
    await this.#loop;
  }

  async publish(text: string): Promise<string> {
    const response = await fetch(`${this.#server}/${this.#env.NTFY_PUBLISH_TOPIC ?? this.#env.NTFY_TOPIC}`, {
      method: "POST",
      headers: { "Content-Type": "text/plain; charset=utf-8", "X-Tags": "hermes-agent" },
      body: text,
    });
    assert.equal(response.status, 200);
    return (await response.json()).id;
  }

  async #onLine(line: string): Promise<void> {
    if (line === "") return;
    const event = JSON.parse(line);
    if (event.event !== "message") return;
    if (this.#seen.has(event.id)) return;
    this.#seen.add(event.id);
    if ((event.tags ?? []).includes("hermes-agent")) return;
    // Stripped, and dropped when nothing is left.
    const text = (event.message ?? "").trim();
    if (text === "") return;
    const userId = event.topic || this.#env.NTFY_TOPIC;
    if (hermesAuthorizes(this.#env, userId)) {
      this.received.push(text);
      return;
    }
    this.refused.push(userId);
    await this.publish(`Hi~ I don't recognize you yet! Here's your pairing code: PAIR${event.id}`);
  }
}
