/** The systemd unit that runs `interop serve`: a user unit by default, a system unit (with a dynamic user) on request. */
import { join } from "node:path";
import { stateHome } from "../paths.ts";

export const UNIT_NAME = "interop.service";

export type Scope = "user" | "system";

type Env = Record<string, string | undefined>;

/** Where the unit file goes: `$XDG_CONFIG_HOME/systemd/user` for a user unit, `/etc/systemd/system` for a system one. */
export function unitPath(scope: Scope, env: Env): string {
  if (scope === "system") return join("/etc/systemd/system", UNIT_NAME);
  return join(env.XDG_CONFIG_HOME || join(env.HOME ?? "~", ".config"), "systemd", "user", UNIT_NAME);
}

/** The data dir the service uses: systemd's state directory for a system unit, the user's default otherwise. */
export function serviceDataDir(scope: Scope, env: Env): string {
  return scope === "system" ? "/var/lib/interop" : join(stateHome(env), "interop");
}

/** Quotes one ExecStart argument for systemd when it needs it. */
function quote(argument: string): string {
  return /^[\w@%+=:,./-]+$/.test(argument) ? argument : `"${argument.replace(/["\\]/g, "\\$&")}"`;
}

export function renderUnit(scope: Scope, command: string[]): string {
  const system = scope === "system";
  return `[Unit]
Description=interop: real-time message bridge between AI agents
After=network.target

[Service]
Type=simple
ExecStart=${command.map(quote).join(" ")}
# Stops cleanly on SIGTERM: streams end, queued commits finish, the database closes.
KillSignal=SIGTERM
TimeoutStopSec=15
Restart=on-failure
RestartSec=2
# 2 is bad usage and 6 another broker holding the port or data dir: restarting would not help.
RestartPreventExitStatus=2 6
NoNewPrivileges=yes
${system ? "DynamicUser=yes\nStateDirectory=interop\n" : ""}
[Install]
WantedBy=${system ? "multi-user.target" : "default.target"}
`;
}
