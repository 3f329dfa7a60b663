/**
 * `npm run test:binary`: the tests that can find what only the single executable breaks, run against `dist/interop`
 * (INTEROP_CLI). `npm run test:node` and `npm run test:deno` run every test on the source; the executable is that
 * source bundled by esbuild into Node 24's single-executable support, so what it alone can break is the bundle (each
 * dependency, and the dashboard page, inside it), its entry (argv, stdio, exit codes, signals), the paths it writes
 * (service units, shell completion, install.sh) and the PostgreSQL client it carries. The tests of those run here,
 * and every security test: what an attacker meets is the executable. The end-to-end tests of the broker under
 * faults and load (PostgreSQL outages and crashes, chaos, slow consumers, A2A retries, pipelining) run the same
 * code on the same Node 24 as test:node and stay out: they were half the suite's time, and CI runs `npm test`
 * within 90 minutes. `--all` runs every end-to-end and security test against the executable.
 *
 *   node scripts/test_binary.ts [--all]
 */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import process from "node:process";

const EXECUTABLE = "dist/interop";

/**
 * The end-to-end tests run against the executable (tests/e2e/NAME.test.ts), by what of it they exercise: a new test
 * of any of these belongs here.
 */
const END_TO_END: Record<string, string> = {
  "the command line: parsing, help, exit codes, --json, stdout and stderr, a closed stdout":
    "cli cli_errors cli_grammar cli_seams client_exit_codes closed_stdout ask_reply agents",
  "what it writes or is: completion scripts, the systemd unit, install.sh, its process title, the port lock":
    "completion service install_script process_title serve_config serve_locks",
  "listen's outputs (a pipe, files) and resuming across restarts":
    "listen listen_out_full listen_restored_backup listen_url_change resume_after_restart resume_by_id handoff",
  "the bundled dependencies: the MCP SDK and zod, yaml (integrate), the postgres client with its patch":
    "mcp mcp_killed integrate integrate_a2a migrate postgres",
  "the wire APIs old and new clients use, tokens, the operator's routes, the dashboard page in Chromium":
    "old_clients ntfy streams auth operator store_identity url_credentials a2a_hermes_call dashboard unkept_numbers",
};

const testsIn = (dir: string) =>
  readdirSync(dir).filter((name) => name.endsWith(".test.ts")).map((name) => `${dir}/${name}`);

function files(all: boolean): string[] {
  if (all) return [...testsIn("tests/e2e"), ...testsIn("tests/security")];
  const endToEnd = Object.values(END_TO_END).join(" ").split(" ").map((name) => `tests/e2e/${name}.test.ts`);
  return [...endToEnd, ...testsIn("tests/security")];
}

const args = process.argv.slice(2);
if (args.some((arg) => arg !== "--all")) {
  console.error(
    `test_binary: unknown argument ${args.find((arg) => arg !== "--all")} (usage: node scripts/test_binary.ts [--all])`,
  );
  process.exit(2);
}
if (!existsSync(EXECUTABLE)) {
  console.error(`test_binary: ${EXECUTABLE} is missing: run npm run build first`);
  process.exit(1);
}
const chosen = files(args.includes("--all"));
const missing = chosen.filter((file) => !existsSync(file));
if (missing.length > 0) {
  console.error(`test_binary: no such test file: ${missing.join(", ")} (renamed? update scripts/test_binary.ts)`);
  process.exit(1);
}
const run = spawnSync(process.execPath, ["--test", "--test-concurrency=1", ...chosen], {
  stdio: "inherit",
  env: { ...process.env, INTEROP_CLI: EXECUTABLE },
});
process.exit(run.status ?? 1);
