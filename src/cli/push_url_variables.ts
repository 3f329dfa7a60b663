/**
 * The variables a listener's push URL may come from instead of its flag: how `service install listen` keeps a user
 * and password in that URL out of the unit's command line (which ps and `systemctl show` print to anyone).
 */
import { redactUrl } from "../url_redaction.ts";
import { usageError } from "./args.ts";

/** Each push output's flag and the variable that gives its URL when no output flag is given. */
export const PUSH_URL_VARIABLES = {
  post: "INTEROP_POST_URL",
  openclaw: "INTEROP_OPENCLAW_URL",
  "hermes-webhook": "INTEROP_HERMES_WEBHOOK_URL",
  a2a: "INTEROP_A2A_URL",
} as const;

export type PushOutput = keyof typeof PUSH_URL_VARIABLES;

/** What each push output's URL names, for its refusal. */
const PUSH_URL_ROLES: Record<PushOutput, string> = {
  post: "the http(s) URL to post each message to",
  openclaw: "the http(s) URL of the OpenClaw gateway",
  "hermes-webhook": "the http(s) URL of the Hermes webhook route",
  a2a: "the http(s) URL of the agent's A2A JSON-RPC endpoint",
};

/**
 * Refuses the push outputs' URLs among `values` that are not http(s) (a typo's every push failed and was retried
 * for ever, the listener running on). `source` names where each came from: its flag, or its variable.
 */
export function refuseBadPushUrls(
  command: string,
  values: Partial<Record<string, unknown>>,
  source: (output: PushOutput) => string = (output) => `--${output}`,
): void {
  for (const output of Object.keys(PUSH_URL_VARIABLES) as PushOutput[]) {
    const url = values[output];
    if (typeof url !== "string" || isHttpUrl(url)) continue;
    throw usageError(command, `${source(output)} needs ${PUSH_URL_ROLES[output]}, not ${JSON.stringify(redactUrl(url))}`);
  }
}

function isHttpUrl(text: string): boolean {
  try {
    const { protocol } = new URL(text);
    return protocol === "http:" || protocol === "https:";
  } catch {
    return false;
  }
}

/** The push output the environment names (for a listen given no output flag); more than one is a usage error. */
export function pushUrlFromEnv(env: Record<string, string | undefined>): Partial<Record<PushOutput, string>> {
  const set = (Object.entries(PUSH_URL_VARIABLES) as Array<[PushOutput, string]>).filter(([, variable]) => env[variable]);
  if (set.length > 1) {
    throw usageError("listen", `Give at most one output: $${set.map(([, variable]) => variable).join(" and $")} are set`);
  }
  const urls: Partial<Record<PushOutput, string>> = Object.fromEntries(set.map(([output, variable]) => [output, env[variable]]));
  refuseBadPushUrls("listen", urls, (output) => `$${PUSH_URL_VARIABLES[output]}`);
  return urls;
}
