/** The ports fetch refuses to connect to, so no interop client (nor a browser's fetch or EventSource) reaches them. */

/**
 * The fetch standard's "bad ports" (https://fetch.spec.whatwg.org/#port-blocking), as Node 24's fetch (undici)
 * and Deno 2 refuse them: a broker on one of them is unreachable to its own clients.
 */
const BLOCKED_PORTS = new Set([
  1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104, 109, 110,
  111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515, 526, 530, 531, 532,
  540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061,
  6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080,
]);

/**
 * Why `port` cannot serve interop's clients, or undefined when it can.
 *
 * @example
 * ```ts
 * blockedPort(6666); // "port 6666 is one that fetch refuses (…)"
 * blockedPort(18900); // undefined
 * ```
 */
export function blockedPort(port: number): string | undefined {
  if (!BLOCKED_PORTS.has(port)) return undefined;
  return `port ${port} is one that fetch refuses to connect to (the fetch standard's bad ports: 6000, 6665-6669, 10080, …), ` +
    "so interop's clients and browsers (the dashboard's fetch and EventSource) cannot reach it; use another port";
}
