/**
 * A user and password in a URL (`http://user:PASSWORD@host:port`, a broker's or a push target's): Node's fetch refuses
 * such a URL (Deno's sends them as Basic), so they travel as HTTP Basic credentials (for a proxy in front of the
 * broker or the receiver) on both, and the password is never shown.
 */
import { redactUrl, redactUserAndQuery } from "../url_redaction.ts";

/**
 * Whether a URL (a broker's, a push target's) carries a secret: a user or password, a secret query parameter
 * (`?token=`, see `redactUrl`), or (unless `pathKeys` is false) a path segment that looks like a key. Such a URL
 * must be kept out of world-readable files (a unit's command line).
 */
export function hasSecrets(url: string, { pathKeys = true } = {}): boolean {
  return (pathKeys ? redactUrl(url) : redactUserAndQuery(url)) !== url;
}

/** A URL as requests go to it: without its user and password, which become an `Authorization: Basic` value. */
export function splitCredentials(url: string): { url: string; basic: string | undefined } {
  const parsed = URL.canParse(url) ? new URL(url) : undefined;
  if (parsed === undefined || (parsed.username === "" && parsed.password === "")) return { url, basic: undefined };
  // The URL keeps them percent-encoded; Basic carries them as typed (UTF-8, as curl sends them).
  const pair = `${decodeURIComponent(parsed.username)}:${decodeURIComponent(parsed.password)}`;
  const basic = `Basic ${btoa(String.fromCharCode(...new TextEncoder().encode(pair)))}`;
  parsed.username = "";
  parsed.password = "";
  // URL's serialisation gives a bare origin a trailing slash: kept only if it was given (paths are appended to a
  // broker URL; a push target's path is the receiver's to read).
  return { url: url.endsWith("/") ? parsed.href : parsed.href.replace(/\/$/, ""), basic };
}

/** The `Authorization` header: a token (the broker's own credential) over a proxy's Basic credentials, else none. */
export function authorizationHeader(basic: string | undefined, token: string | undefined): Record<string, string> {
  const value = token === undefined ? basic : `Bearer ${token}`;
  return value === undefined ? {} : { authorization: value };
}
