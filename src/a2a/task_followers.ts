/** How many blocking calls and streams may follow one A2A task at once. */
import { InteropError } from "../errors.ts";
import { AgentShares } from "../http/agent_shares.ts";

/**
 * Blocking SendMessages waiting on one task and its streams (SendStreamingMessage, the same one again,
 * SubscribeToTask), together. Each reads the task again, its message and reply whole, at every change, so their
 * number multiplies what one change costs: one agent's token with 300 streams of its own task of 1 MB made its 1 MB
 * reply take 39 s to publish and held /status 67 s; with 300 blocking calls of one messageId, 27 s and 34 s. A
 * client needs one, and a few more while the broker has not yet seen the connections it dropped go.
 */
export const MAX_FOLLOWERS_PER_TASK = 4;

/** The places of each task's followers (by task id), refused 429 past MAX_FOLLOWERS_PER_TASK; one a broker. */
export function taskFollowerPlaces(): AgentShares {
  return new AgentShares(MAX_FOLLOWERS_PER_TASK, (taskId, held, max) =>
    new InteropError(
      "too_many_requests",
      `Too many waits and streams of task ${taskId}: ${held} open, the most one task may have is ${max} (each reads the ` +
        "task again at every change); end one, or GetTask it",
      { retryAfter: 1 },
    ));
}
