/** `interop agent dead-letters | acknowledge | redeliver`: what an agent's receiver refused for good, seen to. */
import { type ListedDeadLetter, MAX_REDELIVERED } from "../broker/dead_letters.ts";
import type { BrokerClient, RedeliveryAnswer } from "../client/broker_client.ts";
import { counted } from "../counted.ts";
import { InteropError } from "../errors.ts";
import { type AgentName, DEFAULT_POLL_LIMIT, fromWire, MAX_POLL_LIMIT } from "../message.ts";
import { parseCount, usageError } from "./args.ts";
import type { Io } from "./io.ts";
import { formatAgo } from "./relative_time.ts";

const ACTIONS = ["dead-letters", "acknowledge", "redeliver"] as const;
type DeadLetterAction = (typeof ACTIONS)[number];

export function isDeadLetterAction(action: string): action is DeadLetterAction {
  return (ACTIONS as readonly string[]).includes(action);
}

/** Characters of a letter's message shown: enough to tell it; --json has it whole. */
const MESSAGE_SHOWN = 200;

interface Flags {
  all: boolean;
  acknowledged: boolean;
  limit?: string;
  json: boolean;
}

export async function runDeadLetterAction(
  action: DeadLetterAction,
  agent: AgentName,
  words: string[],
  values: Flags,
  client: BrokerClient,
  io: Io,
): Promise<void> {
  if (action === "dead-letters") {
    const limit = values.limit === undefined ? DEFAULT_POLL_LIMIT : parseCount("agent", "--limit", values.limit, 1, MAX_POLL_LIMIT);
    const { letters, more } = await client.deadLetters(agent, limit, values.acknowledged);
    io.stdout(values.json ? JSON.stringify(letters) + "\n" : formatDeadLetters(agent, letters, values.acknowledged));
    if (more) {
      io.stderr(
        `note: only the newest ${letters.length} fit in the broker's answer (their messages are big); older ones were ` +
          `left out: acknowledge or redeliver these to see them\n`,
      );
    }
    return;
  }
  if (values.all === (words.length > 0)) {
    throw usageError("agent", `Say which dead letters: interop agent ${action} ${agent} ID... (their message ids) or --all`);
  }
  const ids = values.all ? undefined : [...new Set(words.map((id) => parseCount("agent", "ID", id, 1, Number.MAX_SAFE_INTEGER)))];
  if (action === "acknowledge") {
    const { acknowledged, dead_letters: left } = await client.acknowledgeDeadLetters(agent, ids);
    const missed = ids?.filter((id) => !acknowledged.includes(id)) ?? [];
    io.stdout(
      values.json
        ? JSON.stringify({ agent, acknowledged, dead_letters: left }) + "\n"
        : `acknowledged ${counted(acknowledged.length, "dead letter")} of ${agent}; ${left} left` +
          (missed.length > 0 ? ` (not dead letters, or acknowledged already: ${missed.join(", ")})` : "") + "\n",
    );
    return;
  }
  const done: RedeliveryAnswer = { redelivered: [], unknown: [], removed: [], refused: [], dead_letters: 0 };
  const send = async (named: number[]) => {
    for (let start = 0; start < named.length; start += MAX_REDELIVERED) {
      const answer = await client.redeliverDeadLetters(agent, named.slice(start, start + MAX_REDELIVERED)).catch((error) => {
        // Letters before the refused one (an inbox full) were sent: saying so keeps the operator from resending by hand.
        // A refusal of the request itself (a bad token, an unknown agent: below 429) sent none.
        if (!(error instanceof InteropError) || (error.status !== undefined && error.status < 429)) throw error;
        const { status, retryAfter } = error;
        throw new InteropError(error.code, `${error.message} (letters sent before it are not sent again: run this again)`, { status, retryAfter });
      });
      done.redelivered.push(...answer.redelivered);
      done.unknown.push(...answer.unknown);
      done.removed.push(...answer.removed);
      done.refused.push(...answer.refused);
      done.dead_letters = answer.dead_letters;
    }
  };
  if (ids !== undefined) await send(ids);
  else {
    // --all: the letters not acknowledged, as many as one answer lists, then the older ones that then show, each
    // once (one that cannot be sent stays unacknowledged, and listed).
    const tried = new Set<number>();
    for (let more = true; more;) {
      const listed = await client.deadLetters(agent, MAX_POLL_LIMIT, false);
      const named = listed.letters.map((letter) => letter.id).filter((id) => !tried.has(id));
      for (const id of named) tried.add(id);
      await send(named);
      more = listed.more && named.length > 0;
    }
  }
  if (values.json) {
    io.stdout(JSON.stringify({ agent, ...done }) + "\n");
    return;
  }
  const sent = done.redelivered.map(({ id, as }) => `${id} as ${as}`).join(", ");
  io.stdout(
    `redelivered ${counted(done.redelivered.length, "dead letter")} to ${agent}${sent === "" ? "" : ` (${sent})`}` +
      (done.unknown.length > 0 ? `; not dead letters of ${agent}: ${done.unknown.join(", ")}` : "") +
      (done.removed.length > 0 ? `; their messages removed (by retention or their senders), nothing sent (acknowledge them): ${done.removed.join(", ")}` : "") +
      done.refused.map(({ id, error }) => `; ${id} refused: ${error}`).join("") +
      `; ${done.dead_letters} left\n`,
  );
}

/** Each letter as a heading (its id, when and whom from), then why, then the start of its message. */
function formatDeadLetters(agent: string, letters: ListedDeadLetter[], withAcknowledged: boolean): string {
  if (letters.length === 0) return `${agent} has no dead letters${withAcknowledged ? "" : " to see to"}\n`;
  const now = Date.now();
  return letters.map((letter) => {
    const message = letter.message === null ? undefined : fromWire(letter.message);
    const from = message === undefined ? "its message removed (by retention or its sender)" : `from ${message.from}`;
    const seen = letter.acknowledged_at === null ? "" : `, acknowledged ${formatAgo(letter.acknowledged_at, now)}`;
    const shown = typeof message?.payload.text === "string" ? message.payload.text : JSON.stringify(message?.payload);
    const text = message === undefined ? "" : `\n  message: ${indented(cut(shown))}`;
    return `${letter.id}  parked ${formatAgo(letter.parked_at, now)}, ${from}${seen}\n  reason: ${indented(letter.reason)}${text}\n`;
  }).join("");
}

/**
 * Text the receiver or the sender wrote, its every line indented: only a letter's heading starts a line, so a reason
 * with a line break cannot pass for another letter (red team 59).
 */
function indented(text: string): string {
  return text.replace(/\r\n|[\n\r\v\f\u2028\u2029]/g, "\n    ");
}

function cut(text: string): string {
  return text.length > MESSAGE_SHOWN ? `${text.slice(0, MESSAGE_SHOWN)}… (${text.length} characters)` : text;
}
