/**
 * The `postgres` client 3.4.9 can leave a promise rejected with a connection's failure that nothing awaits when
 * PostgreSQL drops connections under load (seen once in CI: `read ECONNRESET`, unhandled, took a broker down while
 * PostgreSQL was SIGKILLed and restarted). The broker's own queries get the same failure where they are awaited
 * (and answer 503 until PostgreSQL is back), so such a stray is logged and the broker serves on. Any other
 * unhandled rejection still ends the process, as it does without this.
 */
import process from "node:process";
import { isUnreachable } from "./postgres_client.ts";

export function surviveStrayConnectionFailures(warn: (message: string) => void): void {
  process.on("unhandledRejection", (reason) => {
    if (!isUnreachable(reason)) throw reason;
    warn(`a PostgreSQL connection failed with no query waiting on it (${(reason as Error).message}): serving on`);
  });
}
