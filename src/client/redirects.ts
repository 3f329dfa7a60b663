/**
 * Outbound pushes never follow a redirect: fetch would send a 301/302/303 on as a GET without the body, and the
 * landing page's 200 would count as delivered (an nginx http→https or trailing-slash rule dropped every message).
 */

import { redactUrl } from "../url_redaction.ts";

/** The fetch option every push sends, so a 3xx comes back as it is instead of being followed. */
export const NO_REDIRECTS = { redirect: "manual" } as const satisfies RequestInit;

/**
 * For a 3xx answer, what to tell the operator (both URLs with their secrets hidden): where it points (resolved
 * against `url`), or that it names no place; undefined for any other status. A redirect is the receiver's setup, not the message: it is retried.
 */
export function redirectProblem(response: Response, url: string): string | undefined {
  if (response.status < 300 || response.status > 399) return undefined;
  const location = response.headers.get("location");
  let target: string | undefined;
  try {
    target = location === null ? undefined : new URL(location, url).href;
  } catch {
    target = location ?? undefined;
  }
  const where = target === undefined ? "with no Location" : `to ${redactUrl(target)}`;
  return `${redactUrl(url)} answered HTTP ${response.status}, a redirect ${where}, which is not followed (a redirected POST ` +
    "arrives as a GET without the message): point the URL there";
}
