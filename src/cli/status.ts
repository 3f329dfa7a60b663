/** `interop status`: the broker's health, for people (a table) and for cron (--json, exit codes). */
import { existsSync } from "node:fs";
import { InteropError } from "../errors.ts";
import { UNIT_NAME, unitPath } from "../service/unit.ts";
import { parseAgentName } from "../message.ts";
import { reportClock, type StatusReport } from "../status_report.ts";
import { brokerClient, brokerUrls, CLIENT_HELP, CLIENT_OPTIONS, parseCount, parseFlags } from "./args.ts";
import { EXIT } from "./exit_codes.ts";
import type { Io } from "./io.ts";
import { formatTable } from "./table.ts";
import { formatAgo, formatSpan } from "./relative_time.ts";
import { counted } from "../counted.ts";

export const HELP = `interop status — is the broker healthy?

Usage: interop status [--json] [--require A,B] [--max-pending N] [--max-dead-letters N]

Prints the broker's version and build, pid, uptime and a line per agent (online, open
stream, pending messages, dead letters, last seen) in relative times ("up 3 h 2 m",
"4 s ago"; --json keeps the broker's absolute ones); with several brokers on one
database, each of them (alive or gone) and the one each agent's stream is on. On
PostgreSQL, a store call waiting a second or more shows in the first line ("oldest store
call waiting 12 s"): one slowing down, before serve's --store-timeout gives it up. Made
for cron health checks:

  interop status --require hermes,openclaw --max-pending 100 --json || alert

Options:
  -j, --json          print one JSON object: the broker's /status plus "ok", "reachable"
                      and "problems" (also when the broker is unreachable or refused)
  --require A,B       unhealthy unless each named agent is known and online (stream open,
                      or a request within the last 60 s)
  --max-pending N     unhealthy if any agent has more than N undelivered messages
  --max-dead-letters N
                      unhealthy if any agent has more than N dead letters (messages its
                      listen --exec or push gave up on; GET /dead-letters?agent=A)
${CLIENT_HELP}
  -h, --help          show this help

With several brokers (--url A,B), each one's report; an unreachable one is a problem.

Exit codes: 0 healthy, 3 broker unreachable (with several: every one), 5 a --require,
--max-pending or --max-dead-letters check failed, the broker cannot reach its store
(PostgreSQL down) or write to it (a full disk), or one of several brokers is
unreachable, 2 bad usage, 4 broker refused (a broker with tokens and no --token-file
or $INTEROP_TOKEN).
`;

export const OPTIONS = {
  json: { type: "boolean", short: "j", default: false },
  require: { type: "string" },
  "max-pending": { type: "string" },
  "max-dead-letters": { type: "string" },
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
  const limit = (flag: "max-pending" | "max-dead-letters") =>
    values[flag] === undefined ? undefined : parseCount("status", `--${flag}`, values[flag], 0, Number.MAX_SAFE_INTEGER);
  const limits = { pending: limit("max-pending"), deadLetters: limit("max-dead-letters") };
  const urls = brokerUrls("status", values.url, io.env);
  if (urls.length > 1) return await reportEach(urls, values, io, required, (report) => findProblems(report, [], limits));
  const client = brokerClient("status", { ...values, url: urls[0] }, io.env, 5000);
  // As shown: a password in the URL is not printed.
  const url = client.baseUrl;
  let report: StatusReport;
  try {
    report = await client.status();
  } catch (error) {
    if (!(error instanceof InteropError)) throw error;
    // --json always answers on stdout: a broker that refused (a token missing, a foreign answer) was reached.
    const reachable = error.code !== "unreachable" && error.code !== "tls_failed";
    if (values.json) io.stdout(JSON.stringify({ ok: false, reachable, url, problems: [error.message] }) + "\n");
    if (reachable) throw error;
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
  const problems = findProblems(report, required, limits);
  if (values.json) {
    io.stdout(JSON.stringify({ ok: problems.length === 0, reachable: true, url, problems, ...report }) + "\n");
  } else {
    io.stdout(formatReport(report, url));
    for (const problem of problems) io.stdout(`problem: ${problem}\n`);
  }
  return problems.length === 0 ? EXIT.ok : EXIT.unhealthy;
}

/**
 * Several brokers (`--url A,B`): each one's report, an unreachable one counted as a problem; a `--require` agent
 * must be online on one of them (its stream is on one broker). Exit 0 when all are healthy, 3 when none could be
 * reached, else 5. `--json`: `{"ok", "problems" (all of them, each broker's after its URL), "brokers": [each as with one
 * --url]}`.
 */
async function reportEach(
  urls: string[],
  values: { json: boolean; "token-file"?: string },
  io: Io,
  required: string[],
  problemsOf: (report: StatusReport) => string[],
): Promise<number> {
  const brokers = await Promise.all(urls.map(async (given) => {
    const client = brokerClient("status", { ...values, url: given }, io.env, 5000);
    const url = client.baseUrl;
    try {
      const report = await client.status();
      return { ok: problemsOf(report).length === 0, reachable: true, url, problems: problemsOf(report), report };
    } catch (error) {
      if (!(error instanceof InteropError) || error.code !== "unreachable") throw error;
      return { ok: false, reachable: false, url, problems: [error.message], report: undefined };
    }
  }));
  const reports = brokers.flatMap(({ report }) => report === undefined ? [] : [report]);
  const offline = required.filter((agent) => !reports.some((report) => report.agents[agent]?.online));
  const clusterProblems = offline.map((agent) => `${agent} is not online on any broker`);
  const ok = clusterProblems.length === 0 && brokers.every((broker) => broker.ok);
  if (values.json) {
    const each = brokers.map(({ report, ...checked }) => ({ ...checked, ...report }));
    // Every problem at the top too, each broker's named by its URL: a script reads `.problems` alone.
    const problems = [...brokers.flatMap(({ url, problems }) => problems.map((problem) => `${url}: ${problem}`)), ...clusterProblems];
    io.stdout(JSON.stringify({ ok, problems, brokers: each }) + "\n");
  } else {
    io.stdout(brokers.map(({ url, report, problems }) =>
      (report === undefined ? `${url}: unreachable\n` : formatReport(report, url)) +
      problems.map((problem) => `problem: ${problem}\n`).join("")
    ).join("\n") + clusterProblems.map((problem) => `problem: ${problem}\n`).join(""));
  }
  if (brokers.every((broker) => !broker.reachable)) return EXIT.unreachable;
  return ok ? EXIT.ok : EXIT.unhealthy;
}

/** The most pending messages and dead letters an agent may have and be healthy (undefined: not checked). */
interface Limits {
  pending: number | undefined;
  deadLetters: number | undefined;
}

function findProblems(report: StatusReport, required: string[], limits: Limits): string[] {
  const problems: string[] = [];
  // A broker from before stores had a status says nothing of it (optional chaining).
  if (report.store?.available === false) problems.push(`the broker cannot reach its store or write to it: ${report.store.error}`);
  for (const agent of required) {
    const status = report.agents[agent];
    if (status === undefined) problems.push(`${agent} is unknown to the broker`);
    else if (!status.online) problems.push(`${agent} is offline (last seen ${status.last_seen ?? "never"})`);
  }
  for (const [agent, status] of Object.entries(report.agents)) {
    if (limits.pending !== undefined && status.pending > limits.pending) {
      problems.push(`${agent} has ${counted(status.pending, "pending message")} (more than ${limits.pending})`);
    }
    // A broker from before dead letters were counted says nothing of them.
    if (limits.deadLetters !== undefined && (status.dead_letters ?? 0) > limits.deadLetters) {
      problems.push(
        `${agent} has ${counted(status.dead_letters!, "dead letter")} (more than ${limits.deadLetters}): ` +
          `interop agent dead-letters ${agent} lists them, interop agent acknowledge ${agent} --all clears them`,
      );
    }
  }
  return problems;
}

function formatReport(report: StatusReport, url: string): string {
  const now = reportClock(report);
  const rows = [["AGENT", "ONLINE", "STREAM", "PENDING", "DEAD LETTERS", "LAST SEEN"]];
  // With several brokers, a stream is shown by the broker it is on.
  const address = new Map(report.brokers?.map((broker) => [broker.id, broker.listening ?? broker.id]));
  for (const [agent, status] of Object.entries(report.agents)) {
    const stream = status.stream_broker != null ? `on ${address.get(status.stream_broker) ?? status.stream_broker}` : status.streams > 0 ? "open" : "-";
    rows.push([agent, status.online ? "yes" : "no", stream, String(status.pending), String(status.dead_letters ?? "-"), formatAgo(status.last_seen, now)]);
  }
  const table = formatTable(rows);
  // A broker older than the build field says its version alone.
  const build = report.build === undefined ? "" : ` (${report.build})`;
  return `interop ${report.version}${build} at ${url}: pid ${report.pid}, up ${formatSpan(report.uptime_seconds)}, ` +
    `${counted(report.streams, "open stream")}, ` +
    `${report.store?.kind === "postgresql" ? `database ${report.store.location}` : `data dir ${report.data_dir}`}` +
    // A call slowing down shows before `--store-timeout` gives it up.
    `${(report.store?.oldest_call_seconds ?? 0) > 0 ? `, oldest store call waiting ${formatSpan(report.store.oldest_call_seconds!)}` : ""}\n` +
    (report.brokers === undefined ? "" : `brokers: ${report.brokers.map((broker) =>
      `${broker.listening ?? `pid ${broker.pid} on ${broker.host}`}${broker.self ? " (this one)" : broker.alive ? "" : " (gone)"}`
    ).join(", ")}\n`) + `\n${table}\n`;
}

