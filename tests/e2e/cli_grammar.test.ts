/** One grammar for every subcommand: each bad invocation is one `error:` line with exit 2, and help is the same both ways. */
import assert from "node:assert/strict";
import process from "node:process";
import { after, test } from "node:test";
import { freePort } from "../helpers/broker.ts";
import { type CliResult, runCli, tempDir } from "../helpers/cli.ts";

interface Row {
  command: string;
  /** Arguments ending in a flag that needs a value and has none. */
  missingValue?: string[];
  /** Arguments that leave out what the command cannot run without. */
  missingRequired?: string[];
  /** Arguments with a value the command refuses, and the flag or word the error must name. */
  badValue: [string[], string];
}

const ROWS: Row[] = [
  { command: "serve", missingValue: ["--port"], badValue: [["--port", "http"], "--port"] },
  { command: "listen", missingValue: ["--agent"], missingRequired: [], badValue: [["--agent", "hermes", "--idle-timeout", "soon"], "--idle-timeout"] },
  { command: "send", missingValue: ["hi", "--from"], missingRequired: ["hi"], badValue: [["--from", "hermes", "--reply-to", "first", "hi"], "--reply-to"] },
  { command: "ask", missingValue: ["--from", "hermes", "--to"], missingRequired: ["--from", "hermes", "hi"], badValue: [["--from", "hermes", "--to", "openclaw", "--timeout", "soon", "hi"], "--timeout"] },
  { command: "poll", missingValue: ["--agent"], missingRequired: [], badValue: [["--agent", "hermes", "--limit", "all"], "--limit"] },
  { command: "status", missingValue: ["--url"], badValue: [["--max-pending", "many"], "--max-pending"] },
  { command: "mcp", missingValue: ["--agent"], missingRequired: [], badValue: [["--agent", "Bad/Name"], "--agent"] },
  { command: "integrate", missingValue: ["hermes", "--agent"], missingRequired: [], badValue: [["hermes", "--url", "ftp://example.com"], "--url"] },
  { command: "token", missingValue: ["create", "--agent"], missingRequired: [], badValue: [["create", "--agent", "Bad/Name"], "--agent"] },
  { command: "agent", missingValue: ["list", "--url"], missingRequired: ["remove"], badValue: [["add", "Bad/Name"], "Bad/Name"] },
  { command: "service", missingValue: ["install", "--port"], missingRequired: [], badValue: [["install", "--port", "99999"], "--port"] },
  { command: "migrate", missingValue: ["--from"], missingRequired: [], badValue: [["--from", "data", "--to", "mysql://db/interop"], "--to"] },
  { command: "completion", missingRequired: [], badValue: [["powershell"], "powershell"] },
  { command: "version", badValue: [["extra"], "extra"] },
];

// Nothing here may reach a real broker or write a real home: the URL is a port nothing listens on, the dirs are new.
const home = tempDir("interop-grammar-");
after(() => home.cleanup());
const ENV = {
  HOME: home.path,
  XDG_STATE_HOME: home.path,
  XDG_CONFIG_HOME: home.path,
  INTEROP_DATA_DIR: "",
  INTEROP_AGENT: "",
  INTEROP_TOKEN: "",
  // Nothing listens there: no command here should get as far as connecting.
  INTEROP_URL: `http://127.0.0.1:${await freePort()}`,
};
const run = (args: string[]) => runCli(args, { env: ENV, timeoutMs: 15_000 });

/** Exit 2, nothing on stdout, and exactly one `error:` line on stderr, never a stack trace. */
function assertUsageError(result: CliResult, what: string): string {
  assert.equal(result.code, 2, `${what}: exit code; stderr: ${result.stderr}`);
  assert.equal(result.stdout, "", `${what}: stdout`);
  assert.match(result.stderr, /^error: [^\n]+\n$/, `${what}: one error line`);
  assert.doesNotMatch(result.stderr, /\n\s+at |node:internal|To specify a positional argument/, `${what}: no stack or parser text`);
  return result.stderr;
}

for (const row of ROWS) {
  const { command } = row;

  test(`interop ${command} answers an unknown option in one line naming the command's --help (exit 2)`, async () => {
    for (const flag of ["--bogus", "-Z"]) {
      const stderr = assertUsageError(await run([command, flag]), `${command} ${flag}`);
      assert.equal(stderr, `error: Unknown option ${flag} for 'interop ${command}'; see 'interop ${command} --help'\n`);
    }
  });

  if (row.missingValue !== undefined) {
    const args = row.missingValue;
    test(`interop ${command} ${args.join(" ")} says which flag lacks its value (exit 2)`, async () => {
      const stderr = assertUsageError(await run([command, ...args]), `${command} missing value`);
      assert.equal(stderr, `error: Missing value for ${args.at(-1)}; see 'interop ${command} --help'\n`);
    });
  }

  if (row.missingRequired !== undefined) {
    const args = row.missingRequired;
    test(`interop ${command} without what it needs says what to add (exit 2)`, async () => {
      assertUsageError(await run([command, ...args]), `${command} missing required`);
    });
  }

  test(`interop ${command} refuses a bad value in one line naming it (exit 2)`, async () => {
    const [args, named] = row.badValue;
    const stderr = assertUsageError(await run([command, ...args]), `${command} bad value`);
    assert.ok(stderr.includes(named), `${command}: the error names ${named}: ${stderr}`);
  });

  test(`interop ${command} --help, -h and 'interop help ${command}' print the same help on stdout (exit 0)`, async () => {
    const help = await run([command, "--help"]);
    assert.equal(help.code, 0, help.stderr);
    assert.equal(help.stderr, "");
    assert.match(help.stdout, new RegExp(`^interop ${command} — [^\\n]+\\n\\nUsage: interop ${command}`));
    assert.match(help.stdout, /\nExit codes: /);
    for (const other of [[command, "-h"], ["help", command]]) {
      const result = await run(other);
      assert.equal(result.code, 0, other.join(" "));
      assert.equal(result.stdout, help.stdout, other.join(" "));
    }
  });
}

test("interop help lists every command, and 'interop help NAME' refuses an unknown one in one line", async () => {
  const help = await run(["help"]);
  assert.equal(help.code, 0);
  for (const { command } of ROWS) assert.match(help.stdout, new RegExp(`\\n  ${command} +\\S`), command);
  const unknown = assertUsageError(await run(["help", "frobnicate"]), "help frobnicate");
  assert.equal(unknown, `error: Unknown command: "frobnicate"; run 'interop --help' for the list\n`);
});

test("interop version prints the same as --version, and --json prints it as JSON", async () => {
  const flag = await run(["--version"]);
  const command = await run(["version"]);
  assert.equal(command.code, 0);
  assert.equal(command.stdout, flag.stdout);
  // The build: the commit and date built from (the binary), or "source" (run from src/).
  assert.match(command.stdout, /^interop \d+\.\d+\.\d+ \((source|[0-9a-f]{7,} \d{4}-\d{2}-\d{2}( \+changes)?)\)\n$/);
  const json = JSON.parse((await run(["version", "-j"])).stdout);
  assert.equal(`interop ${json.version} (${json.build})\n`, flag.stdout);
  // The binary carries the commit build.ts saw (its esbuild define); the source says so.
  assert.equal(json.build === "source", !process.env.INTEROP_CLI, `build ${json.build}`);
  // Session 51's newcomer: `--version --json` printed the text line (a script's JSON.parse failed on it).
  assert.deepEqual(JSON.parse((await run(["--version", "--json"])).stdout), json);
  assertUsageError(await run(["--version", "--frobnicate"]), "--version with an option it does not take");
});

test("every command that takes a flag value that starts with '-' says how to pass it", async () => {
  const stderr = assertUsageError(await run(["send", "--from", "--to", "openclaw", "hi"]), "send --from --to");
  assert.match(stderr, /^error: Missing value for --from: "--to" is an option \(a value that starts with '-' goes as --from=VALUE\)/);
  assertUsageError(await run(["poll", "--agent", "hermes", "--peek=yes"]), "a boolean with a value");
  assertUsageError(await run(["poll", "--agent", "hermes", "extra"]), "an argument poll does not take");
});

// Newcomer, session 51: `send -t py -t openclaw` sent to openclaw alone and exited 0 (parseArgs keeps the last value).
test("a flag that takes a value, given twice, is refused in one line (exit 2), on every command; a switch twice is taken", async () => {
  const stderr = assertUsageError(await run(["send", "-f", "hermes", "-t", "py", "-t", "openclaw", "hi"]), "send -t twice");
  assert.equal(stderr, "error: Option --to given more than once: it takes one value; see 'interop send --help'\n");
  assertUsageError(await run(["poll", "--agent", "hermes", "--agent=leo"]), "poll --agent twice, the second inline");
  assertUsageError(await run(["serve", "--port", "1", "--port", "2"]), "serve --port twice on the command line");
  assert.equal((await run(["version", "--json", "--json"])).code, 0);
});

test("--json prints one JSON document on every command that prints something", async () => {
  const data = tempDir("interop-grammar-data-");
  try {
    const commands = [
      ["version", "--json"],
      ["integrate", "hermes", "--json"],
      ["token", "create", "-a", "hermes", "--data-dir", data.path, "-j"],
      ["token", "list", "--data-dir", data.path, "-j"],
      ["token", "revoke", "-a", "hermes", "--data-dir", data.path, "-j"],
      ["status", "-j"],
    ];
    for (const args of commands) {
      const result = await run(args);
      assert.ok(result.code === 0 || (args[0] === "status" && result.code === 3), `${args.join(" ")}: ${result.stderr}`);
      assert.doesNotThrow(() => JSON.parse(result.stdout), `${args.join(" ")} printed: ${result.stdout}`);
      assert.equal(result.stdout.trimEnd().split("\n").length, 1, args.join(" "));
    }
  } finally {
    data.cleanup();
  }
});
