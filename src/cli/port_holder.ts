/** Says who holds the broker's port, so `interop serve` can explain why it will not start a second broker. */
import type { StatusReport } from "../status_report.ts";

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
