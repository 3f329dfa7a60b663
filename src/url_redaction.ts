/** URLs as they may be shown (errors, logs, `/status`, the process title): their passwords replaced by `***`. */

/**
 * `url` with its credentials replaced by `***`: `http://user:***@host:port` for a user and password (a broker's,
 * or `postgres://user:***@host:port/db` for a store's), `http://***@host:port` for a user alone in an HTTP URL (a
 * token given as the user is sent as Basic `TOKEN:`); a PostgreSQL URL's user alone is a role name, shown. A password
 * runs to the last @ before the host, as URL parsers (and the PostgreSQL client) read one with an @ in it; it may hold a
 * space. A URL that does not parse (a / in its password) has everything from // to its last @ hidden, and so has a
 * PostgreSQL URL whose password holds a / ? or # (a parser reads `postgres://u:2024/pw@db/x` as port 2024 and a path).
 */
export function redactUrl(url: string): string {
  const start = url.includes("//") ? url.indexOf("//") + 2 : 0;
  const rest = url.slice(start);
  const http = start === 0 || /^https?:\/\/$/i.test(url.slice(0, start));
  // The parser ends an HTTP URL's authority at the first / ? or #, as fetch does (what it sends is what counts); a
  // URL it refuses, or a store's URL (no @ in a database name), has its authority up to the last @.
  const parses = http && URL.canParse(start === 0 ? `http://${url}` : url);
  const authority = parses ? rest.slice(0, rest.search(/[/?#]|$/)) : rest;
  const at = authority.lastIndexOf("@");
  if (at < 0) return url;
  const colon = authority.indexOf(":");
  const password = colon >= 0 && colon < at;
  // A user alone is a secret where it is sent as one (an HTTP URL's user goes as Basic `USER:`); in a PostgreSQL URL
  // it is a role name (postgres://interop@host/db): shown, it tells an operator which role the store connects as.
  if (!password && !http) return url;
  // An HTTP URL the parser refuses has no user to trust either.
  const shown = password && (parses || !http) ? `${authority.slice(0, colon)}:***` : "***";
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
