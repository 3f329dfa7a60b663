/** On a store other brokers share: hearing of their commits, replaced streams and removals, and the re-reads behind. */
import type { AgentName } from "../message.ts";
import type { SharedInboxes, Wake } from "../store/store.ts";

/** How often streams on a store other brokers share re-read it without a wake-up, in ms. */
const IDLE_REREAD_MS = 5000;
/** How often the cluster view (the brokers, where the streams are) is read again, in ms. */
const CLUSTER_REFRESH_MS = 1000;

export interface ClusterWatchHooks {
  /** Streams and waiters of these agents (all when undefined) take from the store from where they are. */
  wake: Wake;
  /** Another broker took over `agent`'s stream `session` of this broker. */
  replaced(agent: AgentName, session: string): void;
  /**
   * Reads the cluster view again (the brokers, where the streams are, which inboxes are left, their pending counts);
   * never rejects.
   */
  look(): Promise<void>;
}

/**
 * Listens for other brokers' notifications, and reads the cluster view once; resolves with the timers that re-read
 * now and then (the broker clears them as it closes).
 */
export async function watchCluster(shared: SharedInboxes, hooks: ClusterWatchHooks): Promise<ReturnType<typeof setInterval>[]> {
  await shared.watch(
    hooks.wake,
    hooks.replaced,
    // Another broker removed an inbox: the view says at once which are left (a look every second would too).
    () => void hooks.look(),
  );
  // A notification lost without the connection noticing: every stream re-reads now and then.
  const reread = setInterval(() => hooks.wake(undefined), IDLE_REREAD_MS);
  await hooks.look();
  const refresh = setInterval(hooks.look, CLUSTER_REFRESH_MS);
  for (const timer of [reread, refresh]) (timer as { unref?: () => void }).unref?.();
  return [reread, refresh];
}
