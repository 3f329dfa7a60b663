/**
 * A user and password in a broker URL (`http://user:PASSWORD@host:port`): fetch refuses such a URL, so they travel
 * as HTTP Basic credentials (for a proxy in front of the broker), and the password is never shown.
 */

/**
 * `url` with its credentials replaced by `***`: `http://user:***@host:port` for a user and password,
 * `http://***@host:port` for a user alone in an HTTP URL (a token given as the user is sent as Basic `TOKEN:`). A password runs to
 * the last @ before the host, as URL parsers (and the PostgreSQL client) read one with an @ in it; it may hold a
 * space. A URL that does not parse (a / in its password) has everything from // to its last @ hidden.
 */
export function redactUrl(url: string): string {
  const start = url.includes("//") ? url.indexOf("//") + 2 : 0;
  const rest = url.slice(start);
  const parses = URL.canParse(start === 0 ? `http://${url}` : url);
  // The parser ends the authority at the first / ? or #; a URL it refuses has no authority to trust.
  const authority = parses ? rest.slice(0, rest.search(/[/?#]|$/)) : rest;
  const at = authority.lastIndexOf("@");
  if (at < 0) return url;
  const colon = authority.indexOf(":");
  const password = colon >= 0 && colon < at;
  // A user alone is a secret where it is sent as one (an HTTP URL's user goes as Basic `USER:`); in a PostgreSQL URL
  // it is a role name (postgres://interop@host/db), shown as the store's own messages show it.
  const http = start === 0 || /^https?:\/\/$/i.test(url.slice(0, start));
  if (!password && !http) return url;
  const shown = parses && password ? `${authority.slice(0, colon)}:***` : "***";
  return `${url.slice(0, start)}${shown}${rest.slice(at)}`;
}

/**
 * `text` with every URL in it redacted (see `redactUrl`): a URL runs to white space, a quote or a comma (a list of
 * brokers), less the punctuation a sentence puts after it (`at http://h:1: refused`), which would make it one the
 * parser refuses. A backstop for what is printed: the client shows only URLs it redacted by `redactUrl` already.
 */
export function redactCredentials(text: string): string {
  return text.replace(/[a-z][a-z0-9+.-]*:\/\/[^\s"',]*[^\s"',:;.)]/gi, redactUrl);
}

/** Whether a broker URL carries a user or password (which then must be kept out of world-readable files). */
export function hasCredentials(url: string): boolean {
  return redactUrl(url) !== url;
}

/** A broker URL as requests go to it: without its user and password, which become an `Authorization: Basic` value. */
export function splitCredentials(url: string): { url: string; basic: string | undefined } {
  if (!hasCredentials(url)) return { url, basic: undefined };
  const parsed = new URL(url);
  // The URL keeps them percent-encoded; Basic carries them as typed (UTF-8, as curl sends them).
  const pair = `${decodeURIComponent(parsed.username)}:${decodeURIComponent(parsed.password)}`;
  const basic = `Basic ${btoa(String.fromCharCode(...new TextEncoder().encode(pair)))}`;
  parsed.username = "";
  parsed.password = "";
  // Broker URLs carry no trailing slash (paths are appended to them); URL's serialisation gives a bare origin one.
  return { url: parsed.href.replace(/\/+$/, ""), basic };
}

/** The `Authorization` header: a token (the broker's own credential) over a proxy's Basic credentials, else none. */
export function authorizationHeader(basic: string | undefined, token: string | undefined): Record<string, string> {
  const value = token === undefined ? basic : `Bearer ${token}`;
  return value === undefined ? {} : { authorization: value };
}
