/**
 * What a web page elsewhere can make the operator's browser send is refused: a request from another origin
 * (`Origin`, `Sec-Fetch-Site`), and one under a name that is not the broker's (`Host`: DNS rebinding), as
 * Jupyter and Vite refuse them. Clients that are not browsers send no `Origin` and are not affected.
 */
import { isIP, isIPv6 } from "node:net";
import { InteropError } from "../errors.ts";
import type { Handler, IncomingRequest } from "../runtime/types.ts";
import { errorResponse } from "./error_response.ts";
import { isLook } from "./methods.ts";

/** The names a broker answers to besides IP addresses and localhost. */
export interface BrokerNames {
  /** The `--host` it binds (a name there is one of its names). */
  bindHost: string;
  /** `--allowed-hosts`: the names it serves under (a reverse proxy's, a public one); lower case. */
  allowedHosts: readonly string[];
}

/** The dashboard's page, its script and `/` (a redirect to it) hold no data: a link from any site may open them. */
const PAGES = new Set(["/", "/ui", "/ui/app.js"]);
/** `Sec-Fetch-Site` values of requests a page of the broker made, or the user typed. */
const OWN_SITE = new Set(["same-origin", "none"]);

/** Wraps a handler so that cross-origin requests and foreign `Host` names get 403 with a JSON error instead of reaching it. */
export function checkOrigin(handler: Handler, names: BrokerNames): Handler {
  const allowed = new Set(names.allowedHosts);
  const own = new Set([...allowed, names.bindHost.toLowerCase()]);
  return (request) => {
    const refusal = refusalOf(request, own, allowed);
    return refusal === undefined ? handler(request) : Promise.resolve(errorResponse(refusal));
  };
}

function refusalOf(request: IncomingRequest, own: Set<string>, allowed: Set<string>): InteropError | undefined {
  const host = request.header("host");
  // Only HTTP/1.0 clients omit Host, and no browser is one of them.
  if (host !== null) {
    const name = hostName(host);
    const address = name !== undefined && isIP(name) !== 0 ? name : undefined;
    if (address !== undefined && isUnmarkedLoopback(address)) {
      return new InteropError(
        "unknown_host",
        `Host "${printable(address)}" is an address browsers do not count as this machine's, so they would let any web ` +
          `page's requests to it through unmarked; name the broker by 127.0.0.1, [::1], localhost or the machine's own address`,
      );
    }
    if (name === undefined || !(address !== undefined || name === "localhost" || name.endsWith(".localhost") || own.has(name))) {
      const shown = printable(name ?? host);
      return new InteropError(
        "unknown_host",
        `Host "${shown}" is not one of this broker's names (IP addresses, localhost, --host); a name it serves under ` +
          `(a reverse proxy's, a public one) must be listed when it starts: interop serve --allowed-hosts ${shown}`,
      );
    }
  }
  if (isLook(request.method) && PAGES.has(request.url.pathname)) return undefined;
  // A browser's guess at the next page (speculation rules, a prefetch link, the address bar's own prefetch) is
  // marked `Sec-Fetch-Site: none`, as if the user typed it, even when another site's rules asked for it: a
  // cross-site page's `<script type=speculationrules>` prefetched /poll and took messages no one read (red team 54).
  const purpose = speculativePurpose(request);
  if (purpose !== undefined) {
    return new InteropError(
      "speculative_request",
      `Speculative request refused (${purpose}): a browser's prefetch or prerender is no one's request, and what it ` +
        `took no one would read; open the URL itself`,
    );
  }
  const origin = request.header("origin");
  if (origin !== null && !(host !== null && sameOrigin(origin, host)) && !allowed.has(originName(origin) ?? "")) {
    return new InteropError(
      "cross_origin",
      `Cross-origin request refused: Origin "${printable(origin)}" is not this broker's own; a page served elsewhere may ` +
        `not use the broker. If it is the dashboard behind a reverse proxy, list the proxy's name: interop serve --allowed-hosts NAME`,
    );
  }
  // Browsers mark every request to a loopback or https broker with where it comes from, GETs (an <img>) included.
  const site = request.header("sec-fetch-site");
  if (site !== null && !OWN_SITE.has(site)) {
    return new InteropError(
      "cross_origin",
      `Cross-site request refused (Sec-Fetch-Site: ${printable(site)}): a page served elsewhere may not use the broker; ` +
        `only its own dashboard and clients that are not browsers may`,
    );
  }
  return undefined;
}

/**
 * The header naming a request as a browser's prefetch or prerender: `Sec-Purpose` (any value: each names one),
 * or the older `Purpose: prefetch` (Chromium) and `X-Moz: prefetch` (Firefox); undefined for any other request.
 */
function speculativePurpose(request: IncomingRequest): string | undefined {
  const secPurpose = request.header("sec-purpose");
  if (secPurpose !== null) return `Sec-Purpose: ${printable(secPurpose)}`;
  for (const name of ["Purpose", "X-Moz"]) {
    const value = request.header(name);
    if (value !== null && /prefetch/i.test(value)) return `${name}: ${printable(value)}`;
  }
  return undefined;
}

/**
 * Whether `ip` reaches a loopback broker while browsers do not count it as loopback: the unspecified addresses
 * (0.0.0.0, ::) and an IPv4 address written as IPv6 (`[::ffff:127.0.0.1]`). Chromium sends no `Sec-Fetch-Site` to
 * such a host (not a "potentially trustworthy" origin), so an `<img>` on any site took messages through it (red
 * team, session 52); no client needs these names, since 127.0.0.1, ::1 or the machine's address reach the same socket.
 */
export function isUnmarkedLoopback(ip: string): boolean {
  // isIP takes only the dotted form of IPv4 (`00.0.0.0` is a name to it, refused as one), and every request names
  // an address: no URL parse for it.
  if (!isIPv6(ip)) return ip === "0.0.0.0";
  // The URL parser writes an IPv6 address the one way browsers send it (`[::ffff:7f00:1]`).
  const canonical = new URL(`http://[${ip}]/`).hostname;
  return canonical === "[::]" || canonical.startsWith("[::ffff:");
}

/** The name in a Host value, lower case, without its port or an IPv6 address's brackets; `undefined` if malformed. */
function hostName(host: string): string | undefined {
  const match = /^(?:\[([0-9a-f:.]+)\]|([\w.-]+))(?::\d*)?$/i.exec(host);
  return match === null ? undefined : (match[1] ?? match[2]).toLowerCase();
}

/**
 * Whether `origin` is the origin the request was addressed to: its host and port are the Host's. The scheme is
 * not compared: a proxy that ends TLS in front of the broker passes on https origins with the Host they named.
 */
function sameOrigin(origin: string, host: string): boolean {
  try {
    const url = new URL(origin);
    // Read with the origin's scheme, so that a default port written out (`Host: x:80`) is the same as left out.
    return (url.protocol === "http:" || url.protocol === "https:") && url.host === new URL(`${url.protocol}//${host}`).host;
  } catch {
    return false;
  }
}

/** The host name of an Origin (for `--allowed-hosts`), or `undefined` for `null` and anything malformed. */
function originName(origin: string): string | undefined {
  try {
    return new URL(origin).hostname.replace(/^\[(.*)\]$/, "$1");
  } catch {
    return undefined;
  }
}

/** A header value as it may appear in an error message: short, and nothing that is not plainly printable. */
function printable(value: string): string {
  return value.slice(0, 100).replace(/[^\w.:;/[\]@%+-]/g, "?");
}
