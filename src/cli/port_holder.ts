/** Says who holds the broker's port, so `interop serve` can explain why it will not start a second broker. */
import { createServer } from "node:net";
import { InteropError } from "../errors.ts";
import { usageError } from "./args.ts";
import { reachingHost } from "./bind_host.ts";
import type { StatusReport } from "../status_report.ts";

/**
 * Refuses what the broker could not listen on before it makes its data dir or opens its store, so that a refused
 * start leaves nothing behind (it left a new, empty store): a port another program listens on (`address_in_use`,
 * naming it), and a `--host` that is no address here or a port the process may not bind (usage errors). A port taken
 * between this probe and the broker's own bind, the bind reports.
 */
export async function refuseUnlistenable(hostname: string, port: number): Promise<void> {
  const failure = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
    const probe = createServer();
    probe.once("error", resolve);
    probe.listen({ host: hostname, port, exclusive: true }, () => probe.close(() => resolve(undefined)));
  });
  if (failure === undefined) return;
  if (failure.code === "EADDRINUSE") throw new InteropError("address_in_use", await describePortHolder(hostname, port));
  // Deno's node:net reports an address that is not this machine's as EINVAL.
  const why = failure.code === "EADDRNOTAVAIL" || failure.code === "EINVAL"
    ? `${hostname} is not an address of this machine`
    : failure.code === "ENOTFOUND" || failure.code === "EAI_AGAIN"
    ? `the host name ${hostname} does not resolve`
    : failure.code === "EACCES"
    ? `port ${port} needs privileges (below 1024: root or CAP_NET_BIND_SERVICE)`
    : failure.message;
  throw usageError("serve", `Cannot listen on ${hostname}:${port}: ${why}`);
}

/** Asks the holder's `/status` (briefly) and describes what answered. */
export async function describePortHolder(hostname: string, port: number): Promise<string> {
  const address = `${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`;
  let status: Partial<StatusReport> & Record<string, unknown>;
  try {
    const response = await fetch(`http://${reachingHost(hostname)}:${port}/status`, {
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
