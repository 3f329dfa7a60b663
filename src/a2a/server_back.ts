/**
 * Waiting for an agent's A2A server to answer again after a send ended in doubt, before the next send: a server
 * going down (OpenClaw's gateway restarting, which takes a minute and more; behind a TCP proxy such as docker's, which
 * takes each connection and drops it unanswered while the gateway is away) would otherwise leave every message
 * sent meanwhile in doubt too, and each would be parked instead of delivered once it is back.
 */
import { type RetryContext, retryUntilDone } from "../client/retry.ts";
import { type A2aRpcClient, InDoubtError, NotSentError } from "./rpc_client.ts";

/** A task id no server has: asking for it changes nothing, and any JSON-RPC answer (-32001) shows the server is up. */
const PROBE_TASK_ID = "interop-probe-no-such-task";

/**
 * Resolves once the server answers a `GetTask` at all (its `-32001` included, and an HTTP error too: a server that
 * fails on an unknown task, or a proxy's 502, is there to answer, and the next send, if refused, is refused for sure,
 * not in doubt); retries with backoff while the call does not reach it or goes unanswered. Throws only on shutdown.
 */
export async function untilServerAnswers(
  rpc: A2aRpcClient,
  context: RetryContext,
): Promise<void> {
  await retryUntilDone(
    async () => {
      try {
        await rpc.call("GetTask", () => ({ id: PROBE_TASK_ID }), context.shutdown);
      } catch (error) {
        // Not reached, or no answer: it is not back. Anything else (an error answered, an HTTP status) is an answer.
        if (error instanceof InDoubtError || error instanceof NotSentError) throw error;
      }
    },
    context,
    `a send to ${rpc.url} got no answer; asking whether it is back before the next send`,
  );
}
