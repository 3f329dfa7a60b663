/**
 * The systemd units interop installs: the broker (`interop serve`) and, per agent, an always-on listener
 * (`interop listen`); user units by default, system units (with a dynamic user) on request.
 */
import { join } from "node:path";
import { InteropError } from "../errors.ts";
import { stateHome } from "../paths.ts";

export const UNIT_NAME = "interop.service";

export type Scope = "user" | "system";

/** What a unit runs: the broker, or one agent's listener. */
export type Target = { kind: "serve" } | { kind: "listen"; agent: string };

type Env = Record<string, string | undefined>;

/** `interop.service` for the broker, `interop-listen-AGENT.service` for a listener. */
export function unitName(target: Target): string {
  return target.kind === "serve" ? UNIT_NAME : `interop-listen-${target.agent}.service`;
}

/** Where units go: `$XDG_CONFIG_HOME/systemd/user` for user units, `/etc/systemd/system` for system ones. */
export function unitDir(scope: Scope, env: Env): string {
  if (scope === "system") return "/etc/systemd/system";
  return join(env.XDG_CONFIG_HOME || join(env.HOME ?? "~", ".config"), "systemd", "user");
}

/** Where the unit file goes. */
export function unitPath(scope: Scope, env: Env, target: Target = { kind: "serve" }): string {
  return join(unitDir(scope, env), unitName(target));
}

/**
 * A unit's environment file, beside it (mode 600): what must not be in the unit's command line, which any local
 * user can read in ps and `systemctl show` (the broker's database URL, a listener's broker URL with a password).
 * `interop.env` for the broker, `interop-listen-AGENT.env` for a listener.
 */
export function environmentFilePath(scope: Scope, env: Env, target: Target = { kind: "serve" }): string {
  return join(unitDir(scope, env), unitName(target).replace(/\.service$/, ".env"));
}

/** The environment file's text: each value double-quoted, as systemd reads it (no expansion of `$` there). */
export function renderEnvironment(variables: Record<string, string>): string {
  return Object.entries(variables).map(([name, value]) => `${name}=${quote(value, true)}\n`).join("");
}

/** Whether a file in the unit dir is one of interop's units. */
export function isInteropUnit(file: string): boolean {
  return file === UNIT_NAME || /^interop-listen-[^/]+\.service$/.test(file);
}

/** The data dir the service uses: systemd's state directory for a system unit, the user's default otherwise. */
export function serviceDataDir(scope: Scope, env: Env): string {
  return scope === "system" ? "/var/lib/interop" : join(stateHome(env), "interop");
}

/**
 * A system listener's own state directory: each unit with DynamicUser= runs as its own user, so a listener
 * cannot share the broker's /var/lib/interop (systemd would hand it from one owner to the other).
 */
export function listenerStateDir(agent: string): string {
  return `/var/lib/interop-listen-${agent}`;
}

/**
 * Quotes one ExecStart argument (or environment file value) for systemd so it reads it back as typed. In a unit
 * systemd expands `%` specifiers and `$` variables even inside quotes, so they are doubled; in an environment file
 * a double-quoted value takes a backslash before `"`, `\`, `` ` `` and `$`. A control character is refused (a
 * newline would add a line, such as an ExecStartPre=).
 */
function quote(argument: string, environmentFile = false): string {
  if (/[\x00-\x1f\x7f]/.test(argument)) {
    // The value itself is not repeated: it may be a password.
    throw new InteropError("usage", "Cannot write a value with a control character into a systemd unit; pass it without one");
  }
  if (environmentFile) return `"${argument.replace(/["\\`$]/g, "\\$&")}"`;
  const literal = argument.replace(/[%$]/g, "$&$&");
  return /^[\w@%+=:,./-]+$/.test(literal) ? literal : `"${literal.replace(/["\\]/g, "\\$&")}"`;
}

export function renderUnit(scope: Scope, command: string[], target: Target = { kind: "serve" }, environmentFile?: string): string {
  const system = scope === "system";
  const serve = target.kind === "serve";
  const stateDirectory = serve ? "interop" : listenerStateDir(target.agent).replace("/var/lib/", "");
  return `[Unit]
Description=${serve ? "interop: real-time message bridge between AI agents" : `interop: ${target.agent}'s inbox, handed on as it arrives`}
After=network.target${serve ? "" : ` ${UNIT_NAME}`}

[Service]
Type=simple
${environmentFile === undefined ? "" : `EnvironmentFile=${environmentFile.replace(/%/g, "%%")}\n`}ExecStart=${command.map((argument) => quote(argument)).join(" ")}
# Stops cleanly on SIGTERM: ${serve ? "streams end, queued commits finish, the database closes" : "the message in hand is finished first"}.
KillSignal=SIGTERM
TimeoutStopSec=15
Restart=on-failure
RestartSec=2
${
    serve
      ? "# 2 is bad usage and 6 another broker holding the port or data dir: restarting would not help.\nRestartPreventExitStatus=2 6\n" +
        "# --max-connections 4096 (the default) takes up to ~8,300 open files; systemd's soft limit is 1,024.\nLimitNOFILE=65536"
      // listen waits out another reader of the stream (a unit that never restarted after a `curl /subscribe` peek
      // left its agent with no listener); it exits 8 only when told to (--exit-if-replaced), and then stays stopped.
      : "# 2 is bad usage; 8 is --exit-if-replaced seeing another reader take over (without it, listen waits for it);\n" +
        "# 9 is the agent removed by the operator (a restarted listen would create its inbox again).\nRestartPreventExitStatus=2 8 9"
  }
NoNewPrivileges=yes
# What it creates (the data dir, the database, listen's state) is readable by its user alone.
UMask=0077
${system ? `DynamicUser=yes\nStateDirectory=${stateDirectory}\n` : ""}
[Install]
WantedBy=${system ? "multi-user.target" : "default.target"}
`;
}
