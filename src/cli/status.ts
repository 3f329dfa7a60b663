/** `interop status`: the broker's health, for people (a table) and for cron (--json, exit codes). */
import { existsSync } from "node:fs";
import { InteropError } from "../errors.ts";
import { UNIT_NAME, unitPath } from "../service/unit.ts";
import { parseAgentName } from "../message.ts";
import type { StatusReport } from "../status_report.ts";
import { brokerClient, brokerUrl, CLIENT_HELP, CLIENT_OPTIONS, parseCount, parseFlags } from "./args.ts";
import { EXIT } from "./exit_codes.ts";
import type { Io } from "./io.ts";
import { formatAgo, formatSpan } from "./relative_time.ts";

export const HELP = `interop status — is the broker healthy?

Usage: interop status [--json] [--require A,B] [--max-pending N]

Prints the broker's version, pid, uptime and a line per agent (online, open stream,
pending messages, last seen), in relative times ("up 3 h 2 m", "4 s ago"); --json keeps
the broker's absolute ones. Made for cron health checks:

  interop status --require hermes,openclaw --max-pending 100 --json || alert

Options:
  -j, --json          print one JSON object: the broker's /status plus "ok" and "problems"
  --require A,B       unhealthy unless each named agent is online (stream open, or a
                      request within the last 60 s)
  --max-pending N     unhealthy if any agent has more than N undelivered messages
${CLIENT_HELP}
  -h, --help          show this help

Exit codes: 0 healthy, 3 broker unreachable, 5 a --require or --max-pending check failed
or the broker cannot reach its store (PostgreSQL down), 2 bad usage, 4 broker refused.
`;

export const OPTIONS = {
  json: { type: "boolean", short: "j", default: false },
  require: { type: "string" },
  "max-pending": { type: "string" },
  ...CLIENT_OPTIONS,
  help: { type: "boolean", short: "h", default: false },
} as const;

export async function run(args: string[], io: Io): Promise<number> {
  const { values } = parseFlags("status", args, OPTIONS);
  if (values.help) {
    io.stdout(HELP);
    return 0;
  }
  const required = (values.require ?? "").split(",").filter((name) => name !== "").map((name) => parseAgentName(name, "--require"));
  const maxPending = values["max-pending"] === undefined
    ? undefined
    : parseCount("status", "--max-pending", values["max-pending"], 0, Number.MAX_SAFE_INTEGER);
  const url = brokerUrl("status", values.url, io.env);
  let report: StatusReport;
  try {
    report = await brokerClient("status", values, io.env, 5000).status();
  } catch (error) {
    if (!(error instanceof InteropError) || error.code !== "unreachable") throw error;
    if (values.json) io.stdout(JSON.stringify({ ok: false, reachable: false, url, problems: [error.message] }) + "\n");
    // Point to the service when there is one: that is where the broker's own logs and restarts are.
    const installed = (["user", "system"] as const).find((scope) => existsSync(unitPath(scope, io.env)));
    if (installed === undefined) throw error;
    const systemctl = `systemctl${installed === "user" ? " --user" : ""}`;
    throw new InteropError(
      "unreachable",
      `${error.message}; interop is installed as a systemd service: see '${systemctl} status ${UNIT_NAME}' and 'journalctl${installed === "user" ? " --user" : ""} -u ${UNIT_NAME}'`,
      { cause: error },
    );
  }
  const problems = findProblems(report, required, maxPending);
  if (values.json) {
    io.stdout(JSON.stringify({ ok: problems.length === 0, reachable: true, url, problems, ...report }) + "\n");
  } else {
    io.stdout(formatTable(report, url));
    for (const problem of problems) io.stdout(`problem: ${problem}\n`);
  }
  return problems.length === 0 ? EXIT.ok : EXIT.unhealthy;
}

function findProblems(report: StatusReport, required: string[], maxPending: number | undefined): string[] {
  const problems: string[] = [];
  // A broker from before stores had a status says nothing of it (optional chaining).
  if (report.store?.available === false) problems.push(`the broker cannot reach its store: ${report.store.error}`);
  for (const agent of required) {
    const status = report.agents[agent];
    if (status === undefined) problems.push(`${agent} is unknown to the broker`);
    else if (!status.online) problems.push(`${agent} is offline (last seen ${status.last_seen ?? "never"})`);
  }
  if (maxPending !== undefined) {
    for (const [agent, status] of Object.entries(report.agents)) {
      if (status.pending > maxPending) problems.push(`${agent} has ${status.pending} pending messages (more than ${maxPending})`);
    }
  }
  return problems;
}

function formatTable(report: StatusReport, url: string): string {
  // The broker's clock at the report (to the second): last-seen times are its, and this host's may be skewed.
  const now = Date.parse(report.started_at) + report.uptime_seconds * 1000;
  const rows = [["AGENT", "ONLINE", "STREAM", "PENDING", "LAST SEEN"]];
  for (const [agent, status] of Object.entries(report.agents)) {
    rows.push([agent, status.online ? "yes" : "no", status.streams > 0 ? "open" : "-", String(status.pending), formatAgo(status.last_seen, now)]);
  }
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  const table = rows.map((row) => row.map((cell, column) => cell.padEnd(widths[column])).join("  ").trimEnd()).join("\n");
  return `interop ${report.version} at ${url}: pid ${report.pid}, up ${formatSpan(report.uptime_seconds)}, ` +
    `${report.streams} open streams, ` +
    `${report.store?.kind === "postgresql" ? `database ${report.store.location}` : `data dir ${report.data_dir}`}\n\n${table}\n`;
}

