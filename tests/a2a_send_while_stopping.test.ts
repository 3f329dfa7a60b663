/**
 * A SendMessage that the broker's stopping meets after its message was stored, sent as OpenClaw's A2A channel sends
 * (v1.0 method, `returnImmediately`, no A2A-Version header). OpenClaw counts any error or 5xx as a failed send and,
 * once the peer was reached, does not send it again: an error for a stored message reports a delivered message as
 * not sent (agents28: 2 of 200 such calls at a SIGTERM, /tmp/ag28/oc_shape_term.py).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Authenticator } from "../src/auth/authenticator.ts";
import { TokenFile } from "../src/auth/token_file.ts";
import { Broker } from "../src/broker/broker.ts";
import { BrokerMetrics } from "../src/metrics/broker_metrics.ts";
import { createRouter } from "../src/http/router.ts";
import { SqliteStore } from "../src/store/sqlite.ts";
import type { MessageOutcome } from "../src/store/store.ts";
import type { AgentName } from "../src/message.ts";
import { fromWebRequest } from "./helpers/web_request.ts";
import { testBrokerOptions } from "./helpers/broker_options.ts";
import { tempDir } from "./helpers/cli.ts";
import { bodyText } from "./helpers/response.ts";

/** A store whose first read of a message's outcome comes once the broker has stopped (as a SIGTERM's timing can have it). */
class StopsBeforeOutcomeStore extends SqliteStore {
  stopBroker: () => Promise<void> = () => Promise.resolve();

  override async outcome(id: number): Promise<MessageOutcome> {
    const stop = this.stopBroker;
    this.stopBroker = () => Promise.resolve();
    await stop();
    return await super.outcome(id);
  }
}

test("a SendMessage whose message was stored before the broker stopped answers its task, not an error", async () => {
  const dir = tempDir();
  try {
    const store = new StopsBeforeOutcomeStore(dir.path, "relaxed");
    const broker = await Broker.open(testBrokerOptions(store, dir.path, { rateLimit: 0 }));
    let stopped: Promise<void> | undefined;
    store.stopBroker = () => (stopped = broker.close());
    const internalErrors: unknown[] = [];
    const handler = createRouter(broker, {
      auth: await Authenticator.open(new TokenFile(dir.path)),
      metrics: new BrokerMetrics(() => broker.status(), []),
      maxBodyBytes: 65536,
      retryMs: 2000,
      onInternalError: (error) => internalErrors.push(error),
    });
    const messageId = crypto.randomUUID();
    const response = await handler(fromWebRequest(
      new Request("http://localhost/a2a/hermes", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          jsonrpc: "2.0",
          id: "oc-1",
          method: "SendMessage",
          params: {
            message: { messageId, role: "ROLE_USER", contextId: "ctx-oc-hermes", parts: [{ text: "hello from openclaw" }] },
            configuration: { returnImmediately: true },
          },
        }),
      }),
    ));
    assert.ok(stopped !== undefined, "the broker stopped between the commit and the task's read");
    await stopped;
    const text = bodyText(response as never);
    assert.equal(response.status, 200, text);
    const answer = JSON.parse(text);
    assert.equal(answer.error, undefined, text);
    assert.match(answer.result.task.id, /^task-1-/);
    assert.equal(answer.result.task.contextId, "ctx-oc-hermes");
    assert.equal(answer.result.task.status.state, "TASK_STATE_SUBMITTED");
    assert.deepEqual(internalErrors, []);

    const reopened = await Broker.open(testBrokerOptions(new SqliteStore(dir.path, "relaxed"), dir.path, { rateLimit: 0 }));
    try {
      const pending = await reopened.peek("hermes" as AgentName, 10);
      assert.deepEqual(pending.map((envelope) => envelope.payload.text), ["hello from openclaw"], "stored once, waiting for hermes");
    } finally {
      await reopened.close();
    }
  } finally {
    dir.cleanup();
  }
});
