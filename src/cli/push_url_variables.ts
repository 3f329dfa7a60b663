/**
 * The variables a listener's push URL may come from instead of its flag: how `service install listen` keeps a user
 * and password in that URL out of the unit's command line (which ps and `systemctl show` print to anyone).
 */
import { usageError } from "./args.ts";

/** Each push output's flag and the variable that gives its URL when no output flag is given. */
export const PUSH_URL_VARIABLES = {
  post: "INTEROP_POST_URL",
  openclaw: "INTEROP_OPENCLAW_URL",
  "hermes-webhook": "INTEROP_HERMES_WEBHOOK_URL",
  a2a: "INTEROP_A2A_URL",
} as const;

export type PushOutput = keyof typeof PUSH_URL_VARIABLES;

/** The push output the environment names (for a listen given no output flag); more than one is a usage error. */
export function pushUrlFromEnv(env: Record<string, string | undefined>): Partial<Record<PushOutput, string>> {
  const set = (Object.entries(PUSH_URL_VARIABLES) as Array<[PushOutput, string]>).filter(([, variable]) => env[variable]);
  if (set.length > 1) {
    throw usageError("listen", `Give at most one output: $${set.map(([, variable]) => variable).join(" and $")} are set`);
  }
  return Object.fromEntries(set.map(([output, variable]) => [output, env[variable]]));
}
