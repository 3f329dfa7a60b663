/**
 * URLs as they may be shown (errors, logs, `/status`, the process title): their passwords, the values of query
 * parameters that hold secrets (`?token=`, `?key=`, `?sig=`, …), and path segments that look like keys (a Slack or
 * Discord webhook's), replaced by `***`.
 */

/**
 * `url` with its secrets replaced by `***`: its user and password, and the values of its secret query parameters.
 *
 * @example
 * ```ts
 * redactUrl("http://alice:pw@127.0.0.1:18900"); // "http://alice:***@127.0.0.1:18900"
 * redactUrl("https://hooks.example.com/in?agent=bob&token=abc"); // "https://hooks.example.com/in?agent=bob&token=***"
 * redactUrl("https://hooks.slack.com/services/T0A1/B0C2/4fJ8kq2LmN9xZ7wR3tY6pH1s"); // "https://hooks.slack.com/services/T0A1/B0C2/***"
 * ```
 */
export function redactUrl(url: string): string {
  return _redactPathKeys(redactUserAndQuery(url));
}

/** `url` with its user and password and its secret query parameters replaced by `***`, its path as it is. */
export function redactUserAndQuery(url: string): string {
  return _redactParameters(_redactUserinfo(url));
}

/**
 * `url` with its credentials replaced by `***`: `http://user:***@host:port` for a user and password (a broker's,
 * or `postgres://user:***@host:port/db` for a store's), `http://***@host:port` for a user alone in an HTTP URL (a
 * token given as the user is sent as Basic `TOKEN:`); a PostgreSQL URL's user alone is a role name, shown. A password
 * runs to the last @ before the host, as URL parsers (and the PostgreSQL client) read one with an @ in it; it may hold a
 * space. A URL that does not parse (a / in its password) has everything from // to its last @ hidden, and so has a
 * PostgreSQL URL whose password holds a / ? or # (a parser reads `postgres://u:2024/pw@db/x` as port 2024 and a path).
 */
function _redactUserinfo(url: string): string {
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
 * Whether a path segment holds a key, as webhooks put one in their path (Slack's 24 characters, Discord's 68, Teams'
 * 32 hex digits, Mattermost's 26, n8n's UUID): a run of 20 letters and digits, or of 16 with both; a UUID; or 32
 * characters and more of letters, digits, `-` and `_` (a base64url token). Names people choose rarely look like
 * that; one that does is hidden too, which costs only a readable log line.
 */
function _holdsKey(segment: string): boolean {
  if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(segment) || /^[\w-]{32,}$/.test(segment)) return true;
  return (segment.match(/[A-Za-z0-9]{16,}/g) ?? []).some((run) => run.length >= 20 || (/[0-9]/.test(run) && /[A-Za-z]/.test(run)));
}

/** `url` with the path segments that hold a key (`_holdsKey`) replaced by `***`; only an HTTP URL's path. */
function _redactPathKeys(url: string): string {
  const authority = /^https?:\/\/[^/?#]*/i.exec(url);
  if (authority === null) return url;
  const start = authority[0].length;
  const end = start + url.slice(start).search(/[?#]|$/);
  const path = url.slice(start, end).split("/").map((segment) => (_holdsKey(segment) ? "***" : segment)).join("/");
  return url.slice(0, start) + path + url.slice(end);
}

/**
 * Names of query parameters whose values are secrets, as web services take them: a token anywhere in the name
 * (`token`, `access_token`, `X-Amz-Security-Token`, OpenClaw's hooks `token`), a secret or password (`client_secret`,
 * PostgreSQL's `password` and `sslpassword`, `pass`, `pwd`), an API key (`key`: Google's APIs and Chat webhooks;
 * `api_key`, `apikey`, `subscription-key`), a signature (`sig`: Azure SAS and Power Automate; `X-Amz-Signature`), a
 * credential (`X-Amz-Credential`), ntfy's `auth`, an OAuth or Azure Functions `code`. Case does not matter.
 */
const SECRET_PARAMETER = /token|secret|passw|api[-_]?key|signature|credential|[-_.]key$|^(?:auth|authorization|code|key|pass|pwd|sig|jwt)$/i;

/**
 * `url` with the values of its secret parameters (SECRET_PARAMETER) replaced by `***`; other parameters, and an empty
 * value, stay readable. A secret value runs to the next `&` or `#` (a `;` or `?` in it is kept hidden), and a name is
 * looked for inside other values too (a URL nested in `?next=`): better a value hidden that need not be than a token shown.
 */
function _redactParameters(url: string): string {
  const start = url.search(/[?#]/);
  if (start < 0) return url;
  let shown = "";
  let from = 0;
  // A name follows `?`, `&`, `;` or `#` (a fragment may carry `#access_token=`).
  const names = /[?#&;]([^?#&;=]+)=/g;
  names.lastIndex = start;
  for (let match = names.exec(url); match !== null; match = names.exec(url)) {
    const value = names.lastIndex;
    const end = value + url.slice(value).search(/[&#]|$/);
    if (end === value || !SECRET_PARAMETER.test(_decode(match[1]))) continue;
    shown += `${url.slice(from, value)}***`;
    from = names.lastIndex = end;
  }
  return shown + url.slice(from);
}

/** A parameter's name as a server reads it (`api%5Fkey` is `api_key`); one that does not decode, as given. */
function _decode(name: string): string {
  try {
    return decodeURIComponent(name.replaceAll("+", " "));
  } catch {
    return name;
  }
}

/**
 * `text` with every URL in it redacted (see `redactUrl`): a URL runs to white space, a quote or a comma (a list of
 * brokers), less the punctuation a sentence puts after it (`at http://h:1: refused`), which would make it one the
 * parser refuses. A backstop for what is printed: the client shows only URLs it redacted by `redactUrl` already.
 */
export function redactCredentials(text: string): string {
  return text.replace(/[a-z][a-z0-9+.-]*:\/\/[^\s"',]*[^\s"',:;.)]/gi, redactUrl);
}
