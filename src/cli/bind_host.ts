/** How this machine's clients name a broker by the address it binds. */

/**
 * The host part of a URL that reaches a broker bound to `bindHost` from this machine: loopback for an unspecified
 * address (the broker refuses `0.0.0.0` and `::` as a Host: browsers let any page's requests to them through
 * unmarked), brackets for an IPv6 address.
 */
export function reachingHost(bindHost: string): string {
  if (bindHost === "0.0.0.0") return "127.0.0.1";
  if (bindHost === "::") return "[::1]";
  // An IPv4 address written as IPv6 is refused as a Host too: named as itself.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bindHost);
  if (mapped !== null) return mapped[1];
  return bindHost.includes(":") ? `[${bindHost}]` : bindHost;
}

/** Whether a broker bound to `bindHost` listens on every address of the machine. */
export function isEveryAddress(bindHost: string): boolean {
  return bindHost === "0.0.0.0" || bindHost === "::";
}
