/** A limit with one value for every agent and overrides for some (`--max-pending 100000,openclaw=500`). */
import type { AgentName } from "../message.ts";

export interface PerAgent<T> {
  fallback: T;
  overrides: ReadonlyMap<AgentName, T>;
}

/** The same value for every agent. */
export function uniform<T>(value: T): PerAgent<T> {
  return { fallback: value, overrides: new Map() };
}

export function limitFor<T>(limit: PerAgent<T>, agent: AgentName): T {
  return limit.overrides.get(agent) ?? limit.fallback;
}

/** Every value the limit can take, for settings that must suit all agents (how often to check a TTL). */
export function allValues<T>(limit: PerAgent<T>): T[] {
  return [limit.fallback, ...limit.overrides.values()];
}
