/** What every connection to PostgreSQL shares: int8 read as numbers, and which failures mean unreachable. */

/** `postgres` returns int8 as text (it may pass 2^53); ids, times and counts here stay far below that. */
export const INT8_AS_NUMBER = { to: 20, from: [20], serialize: (value: number) => String(value), parse: (text: string) => Number(text) };

/** Whether a failure means the server cannot be reached now, rather than that it refused this statement. */
export function isUnreachable(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  if (typeof code !== "string") return false;
  if ((error as Error).name === "PostgresError") {
    // 08: connection exception; 57P01-03: the server is shutting down, crashed, or still starting; 53300: no
    // connection slot; 25006: a read-only server (a standby, during a failover).
    return code.startsWith("08") || /^57P0[1-3]$/.test(code) || code === "53300" || code === "25006";
  }
  // The client's own (CONNECTION_CLOSED, CONNECT_TIMEOUT, …) and the socket's (ECONNREFUSED, ECONNRESET, …).
  return /^(CONNECTION_|CONNECT_)/.test(code) || /^E[A-Z]+$/.test(code);
}
