/**
 * Who gets an inbox when a request names an agent that has none. A send never creates one by itself: a typo
 * (`send --to herems`) would make a permanent inbox that every later broadcast also fills.
 */
import { InteropError } from "../errors.ts";
import type { AgentName } from "../message.ts";

/**
 * What a request does with the agent it names: sends to it, reads its inbox (how an agent announces itself), or
 * adds it (the operator: `interop agent add`, `POST /agents`).
 */
export type AgentUse = "send" | "read" | "add";

/** Decides whether `agent` may get an inbox; throws `unknown_agent` or `too_many_agents` to refuse it. */
export type AdmitAgent = (agent: AgentName, known: readonly AgentName[], use: AgentUse) => void;

export interface AdmissionRules {
  /** Whether the broker has tokens (it may change while it runs). */
  tokensOn(): boolean;
  /** Whether a live token acts as `agent`. */
  hasToken(agent: AgentName): boolean;
  /** Inboxes a broker without tokens creates for agents that connect to read. */
  maxAgents: number;
}

/**
 * With tokens: only an agent that has a token (an agent's token must not create inboxes for names it makes up).
 * Without: an agent that connects to read its inbox (the old clients' way to announce themselves), up to
 * `maxAgents` inboxes; never one that is only sent to. The operator's add: up to `maxAgents` either way.
 */
export function agentAdmission(rules: AdmissionRules): AdmitAgent {
  return (agent, known, use) => {
    // The operator's add is held to the cap alone: without tokens anyone may add, and each inbox is kept for good.
    if (use === "add") return refuseOverCap(known, rules.maxAgents, agent);
    if (rules.tokensOn()) {
      if (rules.hasToken(agent)) return;
      throw unknownAgent(
        agent,
        known,
        `with tokens, inboxes exist for serve --agents, agents with a token (interop token create --agent ${agent}) ` +
          `and those added with 'interop agent add ${agent}'`,
      );
    }
    if (use === "send") {
      throw unknownAgent(
        agent,
        known,
        `create it with 'interop agent add ${agent}' (or serve --agents), or let ${agent} connect first ` +
          `(interop listen --agent ${agent})`,
      );
    }
    refuseOverCap(known, rules.maxAgents, agent);
  };
}

function refuseOverCap(known: readonly AgentName[], maxAgents: number, agent: AgentName): void {
  if (known.length >= maxAgents) {
    throw new InteropError(
      "too_many_agents",
      `Too many agents: ${known.length} inboxes exist, the cap is ${maxAgents} (serve --max-agents); is ${agent} a typo?`,
    );
  }
}

function unknownAgent(agent: AgentName, known: readonly AgentName[], howToCreate: string): InteropError {
  const names = known.length === 0 ? "there are none yet" : `the known agents are ${[...known].sort().join(", ")}`;
  return new InteropError("unknown_agent", `Unknown agent: ${agent} has no inbox (${names}); ${howToCreate}`);
}
