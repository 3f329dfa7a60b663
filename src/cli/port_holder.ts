/** Says who holds the broker's port, so `interop serve` can explain why it will not start a second broker. */
import { createServer } from "node:net";
import { InteropError } from "../errors.ts";
import type { StatusReport } from "../status_report.ts";

/**
 * Refuses (`address_in_use`) a port another program listens on before the broker makes its data dir or opens its
 * store, so that a refused start leaves nothing behind (it left a new, empty store). Only a port in use: any other
 * failure of the probe, and a port taken between it and the broker's own bind, the bind reports.
 */
export async function refuseHeldPort(hostname: string, port: number): Promise<void> {
  if (port === 0) return;
  const held = await new Promise<boolean>((resolve) => {
    const probe = createServer();
    probe.once("error", (error: NodeJS.ErrnoException) => resolve(error.code === "EADDRINUSE"));
    probe.listen({ host: hostname, port, exclusive: true }, () => probe.close(() => resolve(false)));
  });
  if (held) throw new InteropError("address_in_use", await describePortHolder(hostname, port));
}

/** Asks the holder's `/status` (briefly) and describes what answered. */
export async function describePortHolder(hostname: string, port: number): Promise<string> {
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  const address = `${host}:${port}`;
  let status: Partial<StatusReport> & Record<string, unknown>;
  try {
    const response = await fetch(`http://${host === "0.0.0.0" ? "127.0.0.1" : host}:${port}/status`, {
      signal: AbortSignal.timeout(1500),
    });
    status = await response.json();
  } catch {
    return `Port ${address} is held by another program (it does not answer like an interop broker); stop it or pass --port`;
  }
  if (status.service === "interop") {
    const store = status.store?.kind === "postgresql" ? `database ${status.store.location}` : `data dir ${status.data_dir}`;
    const known = ([["pid", status.pid], ["version", status.version], ["store", status.data_dir === undefined ? undefined : store]] as const)
      .filter(([, value]) => value !== undefined)
      .map(([name, value]) => name === "store" ? String(value) : `${name} ${value}`);
    // A broker with tokens answers a bare /status with its name only.
    const details = known.length > 0
      ? known.join(", ")
      : `it has tokens: its pid, version and data dir show with one: interop status --url http://${address} --token-file FILE`;
    return `An interop broker is already running on ${address} (${details}); use it, or stop it first (a broker on another --port with a data dir of its own has inboxes of its own)`;
  }
  if ("queues" in status && "subscribers" in status) {
    return `Port ${address} is held by the old bridge (interop-server.py answers its /status); stop it: interop serves its clients unchanged`;
  }
  return `Port ${address} is held by another program (its /status is not interop's); stop it or pass --port`;
}
