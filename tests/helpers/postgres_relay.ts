/**
 * A TCP relay between the broker and PostgreSQL that stops answering chosen connections without closing anything,
 * the way a stopped server, a partition with no reset or a desynced client looks to the broker: what they send still
 * reaches the server; what the server answers waits in the relay until `release()`.
 */
import type { Socket } from "node:net";
import { startRelayServer } from "./relay_server.ts";

interface Pair {
  client: Socket;
  upstream: Socket;
  /** The client's first bytes: the startup message, which names the connection's `application_name`. */
  startup: string | undefined;
  /** The server's answers held back. */
  held: Buffer[];
  /** Once the client sent the trigger of `holdAfter`: the answer that starts the hold. */
  awaited: string | undefined;
}

export interface PostgresRelay {
  /** The database URL, through the relay. */
  url: string;
  /** The connections whose startup `chosen` picks (new ones too) get no answer from now on, until `release()`. */
  hold(chosen: RegExp): void;
  /**
   * As `hold`, from the moment a chosen connection that sent bytes holding `sent` gets an answer holding `answer`
   * (that answer held too): `sent` a message's text, `answer` "COMMIT", and it is the commit's answer that is lost.
   */
  holdAfter(chosen: RegExp, sent: string, answer: string): void;
  /** Hands on what was held, and answers again. */
  release(): void;
  close(): Promise<void>;
}

export async function startPostgresRelay(target: string): Promise<PostgresRelay> {
  let chosen: RegExp | undefined;
  let holding = false;
  let trigger: { sent: string; answer: string } | undefined;
  const picked = (pair: Pair) => chosen !== undefined && pair.startup !== undefined && chosen.test(pair.startup);
  const relay = await startRelayServer<Pair>(target, {
    wire(client, upstream) {
      const pair: Pair = { client, upstream, startup: undefined, held: [], awaited: undefined };
      client.on("data", (chunk: Buffer) => {
        pair.startup ??= chunk.toString("latin1");
        if (trigger !== undefined && picked(pair) && chunk.includes(trigger.sent)) pair.awaited = trigger.answer;
        upstream.write(chunk);
      });
      upstream.on("data", (chunk: Buffer) => {
        if (!holding && pair.awaited !== undefined && chunk.includes(pair.awaited)) {
          holding = true;
          trigger = undefined;
        }
        if (holding && picked(pair)) pair.held.push(chunk);
        else client.write(chunk);
      });
      return pair;
    },
  });
  const url = new URL(target);
  url.hostname = "127.0.0.1";
  url.port = String(relay.port);
  return {
    url: url.href,
    hold(pick) {
      chosen = pick;
      holding = true;
    },
    holdAfter(pick, sent, answer) {
      chosen = pick;
      trigger = { sent, answer };
    },
    release() {
      holding = false;
      trigger = undefined;
      for (const pair of relay.pairs) for (const chunk of pair.held.splice(0)) pair.client.write(chunk);
    },
    close: () => relay.close(),
  };
}
