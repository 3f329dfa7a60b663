/** Hands one message to `interop listen`'s output until it is written, or parks it as a dead letter when refused for good. */
import type { BrokerClient } from "../client/broker_client.ts";
import type { StreamedMessage } from "../client/follow.ts";
import { retryUntilDone as retry } from "../client/retry.ts";
import { InteropError } from "../errors.ts";
import type { AgentName } from "../message.ts";
import type { MessageSink } from "./listen_sinks.ts";
import type { Logger } from "./logger.ts";

interface DeliveryContext {
  agent: AgentName;
  client: BrokerClient;
  shutdown: AbortSignal;
  log: Logger;
  /** Told once the message failed LET_GO_AFTER_FAILURES times in a row: the stream is let go meanwhile (`follow`). */
  letGo?: () => void;
}

/** Failures in a row (some 15 s of backoff) after which a receiver counts as failing, not as having a blip. */
const LET_GO_AFTER_FAILURES = 5;

/**
 * Retries a failing sink with backoff; the message is never skipped (the stream waits behind it). A receiver's
 * final refusal parks the message as a dead letter on the broker, and then it counts as handled. Resolves with
 * whether the message was written (false: parked).
 */
export async function deliverUntilDone(sink: MessageSink, message: StreamedMessage, context: DeliveryContext): Promise<boolean> {
  let refusal: InteropError | undefined;
  let failures = 0;
  await retry(async () => {
    try {
      await sink(message);
    } catch (error) {
      if (!(error instanceof InteropError && error.code === "rejected")) {
        if (++failures === LET_GO_AFTER_FAILURES) context.letGo?.();
        throw error;
      }
      refusal = error;
    }
  }, context, `delivering message ${message.id}`);
  if (refusal === undefined) return true;
  const reason = refusal.message;
  context.log.warn(`message ${message.id} refused for good (${reason}); parking it as a dead letter`);
  await retry(async () => {
    try {
      await context.client.parkDeadLetter(context.agent, message.id, reason);
    } catch (error) {
      // The broker parks only messages it still has: one that retention removed meanwhile cannot be parked.
      if (!(error instanceof InteropError && error.code === "unknown_message")) throw error;
      context.log.warn(`message ${message.id} was removed by the broker's retention meanwhile; it is not parked`);
    }
  }, context, `parking message ${message.id}`);
  return false;
}
