import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { freePort } from "../helpers/broker.ts";
import { runCli, tempDir } from "../helpers/cli.ts";

const ROOT = join(import.meta.dirname!, "..", "..");
/** The built executable: systemd-analyze checks that ExecStart exists and can run. */
const EXECUTABLE = join(ROOT, "dist", "interop");

/** systemd-analyze verify, on a unit file named as the real one; user units need a runtime dir of their own. */
function verify(unit: string, user: boolean, dir: string): void {
  const file = join(dir, "interop.service");
  writeFileSync(file, unit);
  const runtime = join(dir, "runtime");
  mkdirSync(runtime, { recursive: true, mode: 0o700 });
  execFileSync("systemd-analyze", [...(user ? ["--user"] : []), "verify", file], {
    env: { ...process.env, XDG_RUNTIME_DIR: runtime },
    stdio: "pipe",
  });
}

test("interop service install --dry-run prints user and system units that systemd-analyze verify accepts", async () => {
  const dir = tempDir();
  try {
    const user = await runCli(["service", "install", "--dry-run", "--exec", EXECUTABLE, "--data-dir", "/srv/my agents/data"]);
    assert.equal(user.code, 0, user.stderr);
    assert.match(user.stderr, /^# would write .*\/systemd\/user\/interop\.service:\n$/);
    assert.match(user.stdout, /^ExecStart=\/.*dist\/interop serve --port 18900 --data-dir "\/srv\/my agents\/data"$/m);
    assert.match(user.stdout, /^Restart=on-failure$/m);
    assert.match(user.stdout, /^RestartPreventExitStatus=2 6$/m);
    // systemd's soft limit of 1,024 open files would cap --max-connections 4096 at 476 (see open_files.ts).
    assert.match(user.stdout, /^LimitNOFILE=65536$/m);
    assert.match(user.stdout, /^UMask=0077$/m);
    assert.match(user.stdout, /^WantedBy=default\.target$/m);
    verify(user.stdout, true, dir.path);

    const system = await runCli(["service", "install", "--system", "--dry-run", "--exec", EXECUTABLE]);
    assert.match(system.stdout, /--data-dir \/var\/lib\/interop$/m);
    assert.match(system.stdout, /^DynamicUser=yes$/m);
    assert.match(system.stdout, /^WantedBy=multi-user\.target$/m);
    verify(system.stdout, false, dir.path);
  } finally {
    dir.cleanup();
  }
});

test("interop service install writes the unit and says what to run when systemctl cannot; uninstall removes it", async () => {
  const dir = tempDir();
  try {
    // An empty PATH: no systemctl to reach, as on a machine without systemd.
    const env = { XDG_CONFIG_HOME: dir.path, PATH: join(dir.path, "no-bin") };
    const installed = await runCli(["service", "install", "--exec", EXECUTABLE, "--port", "18950"], { env });
    const unit = join(dir.path, "systemd", "user", "interop.service");
    assert.match(installed.stdout, new RegExp(`^wrote ${unit}\n\\$ systemctl --user daemon-reload\n`));
    assert.equal(installed.code, 1);
    // The unit is written but neither loaded nor started: the error names every command still to run.
    assert.match(
      installed.stderr,
      /^error: systemctl --user daemon-reload failed: .*ENOENT.*; once systemd is running, run: systemctl --user daemon-reload && systemctl --user enable --now interop\.service\n$/,
    );
    assert.match(readFileSync(unit, "utf8"), /serve --port 18950/);

    const down = await runCli(["status", "--url", `http://127.0.0.1:${await freePort()}`], { env });
    assert.equal(down.code, 3);
    assert.match(down.stderr, /interop is installed as a systemd service: see 'systemctl --user status interop\.service'/);

    const status = await runCli(["service", "status"], { env: { XDG_CONFIG_HOME: join(dir.path, "elsewhere") } });
    assert.equal(status.code, 3);
    assert.match(status.stdout, /^not installed/);

    const removed = await runCli(["service", "uninstall"], { env });
    assert.match(removed.stdout, new RegExp(`removed ${unit}\n`));
    assert.equal(existsSync(unit), false);
  } finally {
    dir.cleanup();
  }
});

test("interop service install writes every serve option it is given into the unit, in the order given", async () => {
  const result = await runCli([
    "service", "install", "--dry-run", "--exec", EXECUTABLE, "--durability", "relaxed", "--max-pending=100000,openclaw=500",
    "--allowed-hosts", "broker.lan", "--host", "0.0.0.0", "--verbose", "--log-format", "json", "--data-dir", "/srv/interop",
  ]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(
    result.stdout,
    /^ExecStart=\/\S+ serve --port 18900 --data-dir \/srv\/interop --durability relaxed --max-pending 100000,openclaw=500 --allowed-hosts broker\.lan --host 0\.0\.0\.0 --verbose --log-format json$/m,
  );
  const unknown = await runCli(["service", "install", "--dry-run", "--exec", EXECUTABLE, "--bogus"]);
  assert.equal(unknown.code, 2);
  assert.equal(unknown.stderr, "error: Unknown option --bogus for 'interop service'; see 'interop service --help'\n");
});

test("interop service install writes % and $ so systemd passes them as typed, and refuses a control character", async () => {
  const result = await runCli(["service", "install", "--dry-run", "--exec", EXECUTABLE, "--data-dir", "/srv/100% $HOME"]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^ExecStart=\/\S+ serve --port 18900 --data-dir "\/srv\/100%% \$\$HOME"$/m);
  const plain = await runCli(["service", "install", "--dry-run", "--exec", EXECUTABLE, "--data-dir", "/srv/%h"]);
  assert.match(plain.stdout, /--data-dir \/srv\/%%h$/m);
  const injected = await runCli(["service", "install", "--dry-run", "--exec", EXECUTABLE, "--data-dir", "/srv\nExecStartPre=/bin/sh -c id"]);
  assert.equal(injected.code, 2);
  assert.equal(injected.stdout, "");
  assert.match(injected.stderr, /^error: [^\n]*control character[^\n]*\n$/);
});

test("interop service install refuses a data dir interop migrate moved, whose broker would fail at each start", async () => {
  const dir = tempDir();
  try {
    // As `interop migrate` leaves it (src/store/moved_store.ts).
    writeFileSync(join(dir.path, "moved.json"), JSON.stringify({ to: "postgres://db.example/interop", at: "2026-12-06T20:00:00.000Z" }));
    const refused = await runCli(["service", "install", "--dry-run", "--exec", EXECUTABLE, "--data-dir", dir.path]);
    assert.equal(refused.code, 2, refused.stderr);
    assert.equal(refused.stdout, "");
    assert.match(refused.stderr, /^error: Cannot install a broker unit on the SQLite store in \S+: interop migrate moved its store to postgres:\/\/db\.example\/interop at [^\n]*--database-url[^\n]*\n$/);
    // The database's broker is what the unit should run.
    const onDatabase = await runCli(["service", "install", "--dry-run", "--exec", EXECUTABLE, "--data-dir", dir.path, "--database-url", "postgres://db.example/interop"]);
    assert.equal(onDatabase.code, 0, onDatabase.stderr);
  } finally {
    dir.cleanup();
  }
});

test("interop service install listen writes an always-on listener unit that systemd-analyze verify accepts", async () => {
  const dir = tempDir();
  try {
    const env = { INTEROP_URL: "http://127.0.0.1:18901", OPENCLAW_HOOKS_TOKEN: "set-in-the-shell" };
    const args = ["service", "install", "--dry-run", "--exec", EXECUTABLE, "listen", "-a", "openclaw", "--openclaw", "http://127.0.0.1:18789"];
    const user = await runCli(args, { env });
    assert.equal(user.code, 0, user.stderr);
    assert.match(user.stderr, /^# would write .*\/systemd\/user\/interop-listen-openclaw\.service:\n/m);
    assert.match(user.stderr, /^warning: the unit will not see \$OPENCLAW_HOOKS_TOKEN; pass --push-token-file FILE$/m);
    assert.match(user.stdout, /^ExecStart=\/\S+ listen --agent openclaw --openclaw http:\/\/127\.0\.0\.1:18789 --url http:\/\/127\.0\.0\.1:18901$/m);
    assert.match(user.stdout, /^After=network\.target interop\.service$/m);
    assert.match(user.stdout, /^RestartPreventExitStatus=2 8 9$/m);
    verify(user.stdout, true, dir.path);

    // A relative path is made absolute: systemd runs the unit from /.
    const system = await runCli(["service", "install", "--system", ...args.slice(2), "--push-token-file", "hooks-token"], { env });
    assert.equal(system.code, 0, system.stderr);
    assert.doesNotMatch(system.stderr, /will not see/);
    // Installed all the same (a setup may write the secret after), but said: the unit's listen exits 2 without it.
    assert.match(system.stderr, new RegExp(`^warning: --push-token-file ${process.cwd()}/hooks-token does not exist yet: the unit's listen refuses to start`, "m"));
    const tokenFile = join(dir.path, "hooks-token");
    writeFileSync(tokenFile, "secret\n", { mode: 0o600 });
    const withFile = await runCli(["service", "install", ...args.slice(2), "--push-token-file", tokenFile], { env });
    assert.equal(withFile.code, 0, withFile.stderr);
    assert.doesNotMatch(withFile.stderr, /warning/);
    assert.match(system.stdout, new RegExp(` --push-token-file ${process.cwd()}/hooks-token --url \\S+ --state /var/lib/interop-listen-openclaw/state\\.json$`, "m"));
    assert.match(system.stdout, /^StateDirectory=interop-listen-openclaw$/m);
    verify(system.stdout, false, dir.path);

    const mixed = await runCli(["service", "install", "--dry-run", "--port", "1", "listen", "-a", "openclaw"]);
    assert.equal(mixed.code, 2);
    assert.match(mixed.stderr, /^error: --port is a serve option: a listener takes listen options, after 'listen'; see/);
  } finally {
    dir.cleanup();
  }
});

test("interop service status lists the broker's and the listeners' units; uninstall listen removes only the listener's", async () => {
  const dir = tempDir();
  try {
    const env = { XDG_CONFIG_HOME: dir.path, PATH: join(dir.path, "no-bin") };
    await runCli(["service", "install", "--exec", EXECUTABLE], { env });
    await runCli(["service", "install", "--exec", EXECUTABLE, "listen", "--agent", "openclaw", "--openclaw", "http://127.0.0.1:18789"], { env });
    const units = join(dir.path, "systemd", "user");
    const status = await runCli(["service", "status"], { env });
    assert.equal(
      status.stdout,
      `unit: ${units}/interop-listen-openclaw.service\nunit: ${units}/interop.service\n` +
        `$ systemctl --user status --no-pager interop-listen-openclaw.service interop.service\n`,
    );
    assert.equal(status.code, 1, "no systemctl here");

    const removed = await runCli(["service", "uninstall", "listen", "--agent", "openclaw"], { env });
    assert.match(removed.stdout, new RegExp(`removed ${units}/interop-listen-openclaw\\.service\n`));
    assert.equal(existsSync(join(units, "interop-listen-openclaw.service")), false);
    assert.equal(existsSync(join(units, "interop.service")), true);
  } finally {
    dir.cleanup();
  }
});

test("interop service install passes --config into the unit as an absolute path (systemd runs the unit from /)", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const absolute = join(dir.path, "interop.yaml");
  writeFileSync(absolute, "verbose: true\n");
  const result = await runCli(["service", "install", "--dry-run", "--exec", EXECUTABLE, "--config", relative(process.cwd(), absolute)]);
  assert.equal(result.code, 0, result.stderr);
  assert.ok(result.stdout.split("\n").some((line) => line.startsWith("ExecStart=") && line.endsWith(` --config ${absolute}`)), result.stdout);
});

test("interop service install leaves the port and data dir to the config file, and carries $INTEROP_PORT, $INTEROP_HOST, $INTEROP_DATA_DIR and $INTEROP_CONFIG into the unit", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const config = join(dir.path, "interop.yaml");
  writeFileSync(config, `port: 19555\ndata-dir: ${join(dir.path, "data")}\n`);
  // --port 18900 --data-dir DEFAULT would beat the file: a unit serving an empty store on another port.
  const fromFile = await runCli(["service", "install", "--dry-run", "--exec", EXECUTABLE, "--config", config]);
  assert.equal(fromFile.code, 0, fromFile.stderr);
  assert.match(fromFile.stdout, new RegExp(`^ExecStart=\\S+ serve --config ${config}$`, "m"));
  verify(fromFile.stdout, true, dir.path);

  // The unit does not see the shell's environment, from which serve would take them.
  const env = { INTEROP_PORT: "19123", INTEROP_HOST: "127.0.0.2", INTEROP_DATA_DIR: "relative/data", INTEROP_CONFIG: config };
  const fromEnv = await runCli(["service", "install", "--dry-run", "--exec", EXECUTABLE, "--verbose"], { env });
  assert.equal(fromEnv.code, 0, fromEnv.stderr);
  const dataDir = join(process.cwd(), "relative", "data");
  assert.match(fromEnv.stdout, new RegExp(`^ExecStart=\\S+ serve --port 19123 --data-dir ${dataDir} --verbose --host 127\\.0\\.0\\.2 --config ${config}$`, "m"));

  // A flag beats the environment, as for serve.
  const fromFlag = await runCli(["service", "install", "--dry-run", "--exec", EXECUTABLE, "--port", "19000"], { env: { INTEROP_PORT: "19123" } });
  assert.match(fromFlag.stdout, /^ExecStart=\S+ serve --port 19000 --data-dir \S+$/m);
  const badPort = await runCli(["service", "install", "--dry-run", "--exec", EXECUTABLE], { env: { INTEROP_PORT: "high" } });
  assert.equal(badPort.code, 2);
  assert.match(badPort.stderr, /^error: Invalid --port: "high"/);

  // The config is read as the unit's serve will read it: one it cannot read is refused now, not in a restart loop.
  const missing = await runCli(["service", "install", "--dry-run", "--exec", EXECUTABLE, "--config", join(dir.path, "none.yaml")]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /^error: Cannot read config .*none\.yaml: ENOENT/);
});

test("interop service install --system refuses a path its dynamic user cannot write (a data dir, --out or --state outside its state directory, a --pipe)", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const config = join(dir.path, "interop.yaml");
  writeFileSync(config, "data-dir: /srv/interop\n");
  const system = ["service", "install", "--system", "--dry-run", "--exec", EXECUTABLE];
  const refused: Array<[string[], RegExp]> = [
    [["--data-dir", "/srv/interop"], /^error: --data-dir \/srv\/interop cannot work in a --system unit: its dynamic user can write only under \/var\/lib\/interop;/],
    [["--config", config], /^error: --data-dir \/srv\/interop cannot work in a --system unit/],
    [["listen", "-a", "bob", "--out", "/home/u/bob.jsonl"], /^error: --out \/home\/u\/bob\.jsonl cannot work in a --system unit: its dynamic user can write only under \/var\/lib\/interop-listen-bob;/],
    [["listen", "-a", "bob", "--state", "/srv/bob.json"], /^error: --state \/srv\/bob\.json cannot work in a --system unit/],
    [["listen", "-a", "bob", "--pipe", "/tmp/hermes-msg-pipe"], /^error: --pipe cannot work in a --system unit: its dynamic user has a \/tmp of its own/],
  ];
  for (const [args, expected] of refused) {
    const result = await runCli([...system, ...args]);
    assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
    assert.match(result.stderr, expected);
    assert.equal(result.stdout, "");
  }
  const inside = await runCli([...system, "--data-dir", "/var/lib/interop/main"]);
  assert.equal(inside.code, 0, inside.stderr);
  const out = await runCli([...system, "listen", "-a", "bob", "--out", "/var/lib/interop-listen-bob/bob.jsonl"]);
  assert.equal(out.code, 0, out.stderr);
  verify(out.stdout, false, dir.path);
});

test("interop service install puts the database URL in a mode-600 environment file, never in the unit's command line", async () => {
  const dir = tempDir();
  try {
    const env = { XDG_CONFIG_HOME: dir.path, PATH: join(dir.path, "no-bin") };
    const url = 'postgres://interop:s3cr$t"`\\@db.lan:5432/interop';
    const installed = await runCli(["service", "install", "--exec", EXECUTABLE, "--database-url", url, "--durability", "strict"], { env });
    const unitDir = join(dir.path, "systemd", "user");
    const environmentFile = join(unitDir, "interop.env");
    assert.match(installed.stdout, new RegExp(`^wrote ${environmentFile} \\(mode 600\\)\n`));
    const unit = readFileSync(join(unitDir, "interop.service"), "utf8");
    assert.doesNotMatch(unit, /s3cr|database-url/);
    assert.match(unit, new RegExp(`^EnvironmentFile=${environmentFile}$`, "m"));
    assert.match(unit, /^ExecStart=\S+ serve --port 18900 --data-dir \S+ --durability strict$/m);
    assert.equal(statSync(environmentFile).mode & 0o777, 0o600);
    // As systemd reads a double-quoted value: a backslash before " \ ` and $.
    assert.equal(readFileSync(environmentFile, "utf8"), 'INTEROP_DATABASE_URL="postgres://interop:s3cr\\$t\\"\\`\\\\@db.lan:5432/interop"\n');
    verify(unit, true, dir.path);

    // From the environment too: without it the unit's broker would serve an empty SQLite store.
    const fromEnv = await runCli(["service", "install", "--dry-run", "--exec", EXECUTABLE], { env: { ...env, INTEROP_DATABASE_URL: url } });
    assert.equal(fromEnv.code, 0, fromEnv.stderr);
    assert.match(fromEnv.stdout, /^EnvironmentFile=/m);
    assert.match(fromEnv.stderr, /interop\.env \(mode 600\) setting INTEROP_DATABASE_URL\n$/);
    assert.doesNotMatch(fromEnv.stdout + fromEnv.stderr, /s3cr/);

    const removed = await runCli(["service", "uninstall"], { env });
    assert.match(removed.stdout, new RegExp(`removed ${environmentFile}\n`));
    assert.equal(existsSync(environmentFile), false);
  } finally {
    dir.cleanup();
  }
});

test("interop service install listen puts a broker URL with a password in the listener's mode-600 environment file, from --url or $INTEROP_URL", async () => {
  const dir = tempDir();
  try {
    const env = { XDG_CONFIG_HOME: dir.path, PATH: join(dir.path, "no-bin") };
    const url = "http://alice:s3cr$t pw@127.0.0.1:18901";
    const unitDir = join(dir.path, "systemd", "user");
    const environmentFile = join(unitDir, "interop-listen-bob.env");
    const installed = await runCli(["service", "install", "--exec", EXECUTABLE, "listen", "-a", "bob", "--url", url], { env });
    assert.match(installed.stdout, new RegExp(`^wrote ${environmentFile} \\(mode 600\\)\n`));
    const unit = readFileSync(join(unitDir, "interop-listen-bob.service"), "utf8");
    assert.doesNotMatch(unit, /s3cr|--url/);
    assert.match(unit, new RegExp(`^EnvironmentFile=${environmentFile}$`, "m"));
    assert.match(unit, /^ExecStart=\S+ listen --agent bob$/m);
    assert.equal(statSync(environmentFile).mode & 0o777, 0o600);
    assert.equal(readFileSync(environmentFile, "utf8"), 'INTEROP_URL="http://alice:s3cr\\$t pw@127.0.0.1:18901"\n');
    verify(unit, true, dir.path);

    const fromEnv = await runCli(["service", "install", "--dry-run", "--exec", EXECUTABLE, "listen", "-a", "bob"], { env: { ...env, INTEROP_URL: url } });
    assert.equal(fromEnv.code, 0, fromEnv.stderr);
    assert.match(fromEnv.stdout, /^ExecStart=\S+ listen --agent bob$/m);
    assert.match(fromEnv.stderr, /interop-listen-bob\.env \(mode 600\) setting INTEROP_URL\n$/);
    assert.doesNotMatch(fromEnv.stdout + fromEnv.stderr, /s3cr/);

    const removed = await runCli(["service", "uninstall", "listen", "-a", "bob"], { env });
    assert.match(removed.stdout, new RegExp(`removed ${environmentFile}\n`));
    assert.equal(existsSync(environmentFile), false);
  } finally {
    dir.cleanup();
  }
});

test("interop service install listen puts an --a2a or --openclaw URL with a password in the listener's mode-600 environment file, which listen reads", async () => {
  const dir = tempDir();
  try {
    const env = { XDG_CONFIG_HOME: dir.path, PATH: join(dir.path, "no-bin") };
    const unitDir = join(dir.path, "systemd", "user");
    const environmentFile = join(unitDir, "interop-listen-bob.env");
    const a2a = "http://bob:a2a-s3cret@127.0.0.1:9900/";
    const installed = await runCli(["service", "install", "--exec", EXECUTABLE, "listen", "-a", "bob", "--a2a", a2a, "--a2a-max-in-flight", "4"], { env });
    assert.match(installed.stdout, new RegExp(`^wrote ${environmentFile} \\(mode 600\\)\n`));
    const unit = readFileSync(join(unitDir, "interop-listen-bob.service"), "utf8");
    assert.doesNotMatch(unit, /s3cret|--a2a /);
    assert.match(unit, /^ExecStart=\S+ listen --agent bob --a2a-max-in-flight 4$/m);
    assert.match(unit, new RegExp(`^EnvironmentFile=${environmentFile}$`, "m"));
    assert.equal(statSync(environmentFile).mode & 0o777, 0o600);
    assert.equal(readFileSync(environmentFile, "utf8"), `INTEROP_A2A_URL="${a2a}"\n`);
    verify(unit, true, dir.path);

    // With a broker URL with a password too, both go there; an --openclaw URL without one stays on the command line.
    const both = await runCli(
      ["service", "install", "--dry-run", "--exec", EXECUTABLE, "listen", "-a", "bob", "--url", "http://u:pw@127.0.0.1:18901", "--openclaw", "http://hooks:s3cret@127.0.0.1:18789"],
      { env },
    );
    assert.equal(both.code, 0, both.stderr);
    assert.match(both.stdout, /^ExecStart=\S+ listen --agent bob$/m);
    assert.match(both.stderr, /interop-listen-bob\.env \(mode 600\) setting INTEROP_URL, INTEROP_OPENCLAW_URL\n$/);
    assert.doesNotMatch(both.stdout + both.stderr, /s3cret|pw@/);
    const plain = await runCli(["service", "install", "--dry-run", "--exec", EXECUTABLE, "listen", "-a", "bob", "--openclaw", "http://127.0.0.1:18789"], { env });
    assert.match(plain.stdout, /^ExecStart=\S+ listen --agent bob --openclaw http:\/\/127\.0\.0\.1:18789$/m);
    assert.doesNotMatch(plain.stderr, /\.env/);
    // Two outputs are refused, as listen refuses them: with one in the environment file listen would take the other.
    const two = await runCli(["service", "install", "--dry-run", "--exec", EXECUTABLE, "listen", "-a", "bob", "--a2a", a2a, "--out", "x.jsonl"], { env });
    assert.equal(two.code, 2);
    assert.match(two.stderr, /^error: Give the listener at most one output, not --a2a and --out; see 'interop service --help'\n$/);

    // listen, given no output flag, takes the URL from the variable (here: --openclaw's, which needs a hooks token).
    const listen = await runCli(["listen", "-a", "bob", "--url", "http://127.0.0.1:18901"], { env: { INTEROP_OPENCLAW_URL: "http://127.0.0.1:18789" } });
    assert.equal(listen.code, 2);
    assert.match(listen.stderr, /^error: --openclaw needs the hooks token/);
    const twoSet = await runCli(["listen", "-a", "bob"], { env: { INTEROP_OPENCLAW_URL: "http://127.0.0.1:18789", INTEROP_A2A_URL: a2a } });
    assert.equal(twoSet.code, 2);
    assert.match(twoSet.stderr, /^error: Give at most one output: \$INTEROP_OPENCLAW_URL and \$INTEROP_A2A_URL are set; see 'interop listen --help'\n$/);
  } finally {
    dir.cleanup();
  }
});

test("interop service install listen puts a URL with a secret query parameter (?token=, ?key=, ?sig=) or a key in its path in the mode-600 environment file and prints it nowhere", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const env = { XDG_CONFIG_HOME: dir.path, PATH: join(dir.path, "no-bin") };
  const unitDir = join(dir.path, "systemd", "user");
  const environmentFile = join(unitDir, "interop-listen-bob.env");
  const post = "https://hooks.example.com/in?agent=bob&token=s3cret";
  const installed = await runCli(["service", "install", "--exec", EXECUTABLE, "listen", "-a", "bob", "--url", "http://127.0.0.1:18901", "--post", post], { env });
  assert.match(installed.stdout, new RegExp(`^wrote ${environmentFile} \\(mode 600\\)\n`));
  assert.doesNotMatch(installed.stdout + installed.stderr, /s3cret/);
  const unit = readFileSync(join(unitDir, "interop-listen-bob.service"), "utf8");
  assert.doesNotMatch(unit, /s3cret|--post/);
  assert.match(unit, /^ExecStart=\S+ listen --agent bob --url http:\/\/127\.0\.0\.1:18901$/m);
  assert.equal(statSync(environmentFile).mode & 0o777, 0o600);
  assert.equal(readFileSync(environmentFile, "utf8"), `INTEROP_POST_URL="${post}"\n`);
  verify(unit, true, dir.path);

  // Each push flag, and the broker URL: a query's secret is a secret as a password is.
  const cases: Array<[string, string, string]> = [
    ["--openclaw", "http://127.0.0.1:18789/hooks/agent?token=s3cret", "INTEROP_OPENCLAW_URL"],
    ["--hermes-webhook", "http://127.0.0.1:8644/webhooks/interop?Key=s3cret", "INTEROP_HERMES_WEBHOOK_URL"],
    ["--a2a", "http://127.0.0.1:9900/a2a?access_token=s3cret", "INTEROP_A2A_URL"],
    ["--post", "https://prod.westus.logic.azure.com/workflows/1/triggers/manual/paths/invoke?api-version=2016-06-01&sig=s3cret", "INTEROP_POST_URL"],
    ["--url", "http://127.0.0.1:18901/?token=s3cret", "INTEROP_URL"],
    // A key in the path: Slack's and Discord's webhooks.
    ["--post", "https://hooks.slack.com/services/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", "INTEROP_POST_URL"],
    ["--post", "https://discord.com/api/webhooks/1234567890123456789/s3cret-eF_gh1234567890ijklmnOPQRstuvwx", "INTEROP_POST_URL"],
  ];
  for (const [flag, url, variable] of cases) {
    const dry = await runCli(["service", "install", "--dry-run", "--exec", EXECUTABLE, "listen", "-a", "bob", flag, url], { env });
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /^ExecStart=\S+ listen --agent bob$/m, flag);
    assert.match(dry.stderr, new RegExp(`interop-listen-bob\\.env \\(mode 600\\) setting ${variable}\n$`), flag);
    assert.doesNotMatch(dry.stdout + dry.stderr, /s3cret/, flag);
  }
  // One whose query holds nothing secret stays on the command line, readable.
  const plain = await runCli(["service", "install", "--dry-run", "--exec", EXECUTABLE, "listen", "-a", "bob", "--post", "https://h.example/in?agent=bob"], { env });
  assert.match(plain.stdout, /^ExecStart=\S+ listen --agent bob --post "https:\/\/h\.example\/in\?agent=bob"$/m);
  assert.doesNotMatch(plain.stderr, /\.env/);
});

// A flag given twice was once written as its last value (listen's reading), the password of either kept out of the
// unit; since session 51 every command refuses a flag given twice, so the install writes nothing.
test("interop service install listen given a URL flag twice refuses it (exit 2), says no password and writes nothing", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const env = { XDG_CONFIG_HOME: dir.path, PATH: join(dir.path, "no-bin") };
  const install = (...flags: string[]) =>
    runCli(["service", "install", "--dry-run", "--exec", EXECUTABLE, "listen", "-a", "bob", ...flags], { env });
  for (const flag of ["--post", "--a2a", "--openclaw", "--hermes-webhook", "--url"]) {
    for (const values of [["http://u:s3cret@127.0.0.1:9/x", "http://127.0.0.1:9/y"], ["http://127.0.0.1:9/x", "http://u:s3cret@127.0.0.1:9/y"]]) {
      const twice = await install(flag, values[0], flag, values[1]);
      assert.equal(twice.code, 2, twice.stderr);
      assert.equal(twice.stderr, `error: Option ${flag} given more than once: it takes one value; see 'interop service --help'\n`);
      assert.equal(twice.stdout, "");
    }
  }
  assert.deepEqual(readdirSync(dir.path), []);
});

test("interop service install does not write the database URL into an environment file others could read or hold open", async () => {
  const dir = tempDir();
  try {
    const env = { XDG_CONFIG_HOME: dir.path, PATH: join(dir.path, "no-bin") };
    const unitDir = join(dir.path, "systemd", "user");
    const environmentFile = join(unitDir, "interop.env");
    // One left readable by others (by hand, or an older install), and opened by one of them before the install.
    mkdirSync(unitDir, { recursive: true });
    writeFileSync(environmentFile, "INTEROP_DATABASE_URL=old\n", { mode: 0o644 });
    const reader = openSync(environmentFile, "r");
    try {
      const url = "postgres://interop:s3cret@db.lan:5432/interop";
      const installed = await runCli(["service", "install", "--exec", EXECUTABLE, "--database-url", url], { env });
      assert.match(installed.stdout, /wrote \S+interop\.env \(mode 600\)/);
      assert.equal(statSync(environmentFile).mode & 0o777, 0o600);
      assert.match(readFileSync(environmentFile, "utf8"), /s3cret/);
      const seen = Buffer.alloc(4096);
      const read = readSync(reader, seen, 0, seen.length, 0);
      assert.doesNotMatch(seen.subarray(0, read).toString(), /s3cret/);
    } finally {
      closeSync(reader);
    }
  } finally {
    dir.cleanup();
  }
});

test("interop service install listen carries a push URL given by $INTEROP_OPENCLAW_URL (or $INTEROP_POST_URL, …) into the mode-600 environment file", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const env = { XDG_CONFIG_HOME: dir.path, PATH: join(dir.path, "no-bin"), INTEROP_URL: "http://127.0.0.1:18901" };
  const unitDir = join(dir.path, "systemd", "user");
  const environmentFile = join(unitDir, "interop-listen-openclaw.env");
  const url = "http://127.0.0.1:18789?token=s3cret";
  // Without it the unit's listen would have no output: every message printed to the journal, and the cursor moved on.
  const installed = await runCli(
    ["service", "install", "--exec", EXECUTABLE, "listen", "-a", "openclaw", "--push-token-file", "hooks-token"],
    { env: { ...env, INTEROP_OPENCLAW_URL: url } },
  );
  assert.match(installed.stdout, new RegExp(`^wrote ${environmentFile} \\(mode 600\\)\n`));
  assert.equal(readFileSync(environmentFile, "utf8"), `INTEROP_OPENCLAW_URL="${url}"\n`);
  assert.equal(statSync(environmentFile).mode & 0o777, 0o600);
  const unit = readFileSync(join(unitDir, "interop-listen-openclaw.service"), "utf8");
  assert.match(unit, new RegExp(`^EnvironmentFile=${environmentFile}$`, "m"));
  assert.match(unit, /^ExecStart=\S+ listen --agent openclaw --push-token-file \/\S+\/hooks-token --url http:\/\/127\.0\.0\.1:18901$/m);
  assert.doesNotMatch(unit + installed.stderr, /s3cret/);

  for (const variable of ["INTEROP_POST_URL", "INTEROP_HERMES_WEBHOOK_URL", "INTEROP_A2A_URL"]) {
    const dry = await runCli(["service", "install", "--dry-run", "--exec", EXECUTABLE, "listen", "-a", "bob"], {
      env: { ...env, [variable]: "http://127.0.0.1:9900/" },
    });
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stderr, new RegExp(`interop-listen-bob\\.env \\(mode 600\\) setting ${variable}\n$`));
  }
  // With no push URL at all, the unit's listen would refuse the push flag: so does install.
  const none = await runCli(["service", "install", "--dry-run", "--exec", EXECUTABLE, "listen", "-a", "openclaw", "--push-token-file", "t"], { env });
  assert.equal(none.code, 2, none.stderr);
  assert.match(none.stderr, /^error: --push-token-file goes with --post or --openclaw URL, and none was given/);
  assert.equal(none.stdout, "");
  // An output flag wins over the variable, in the unit as in listen.
  const flag = await runCli(["service", "install", "--dry-run", "--exec", EXECUTABLE, "listen", "-a", "bob", "--out", "/x.jsonl"], {
    env: { ...env, INTEROP_OPENCLAW_URL: url },
  });
  assert.equal(flag.code, 0, flag.stderr);
  assert.doesNotMatch(flag.stdout + flag.stderr, /EnvironmentFile|\.env/);
});

test("interop service install listen makes --a2a-token-file absolute, as every path flag of listen and serve (systemd runs the unit from /)", async () => {
  const result = await runCli([
    "service", "install", "--dry-run", "--exec", EXECUTABLE, "listen", "-a", "bob", "--a2a", "http://127.0.0.1:9900/", "--a2a-token-file", "a2a-token",
    "--token-file", "token", "--state", "state.json",
  ]);
  assert.equal(result.code, 0, result.stderr);
  const cwd = process.cwd();
  assert.match(result.stdout, new RegExp(`--a2a-token-file ${cwd}/a2a-token --token-file ${cwd}/token --state ${cwd}/state\\.json$`, "m"));
});

test("interop service install removes the environment file an earlier install left when the new unit needs none", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const env = { XDG_CONFIG_HOME: dir.path, PATH: join(dir.path, "no-bin") };
  const environmentFile = join(dir.path, "systemd", "user", "interop.env");
  await runCli(["service", "install", "--exec", EXECUTABLE, "--database-url", "postgres://interop:s3cret@db.lan/interop"], { env });
  assert.equal(existsSync(environmentFile), true);
  const again = await runCli(["service", "install", "--exec", EXECUTABLE], { env });
  assert.match(again.stdout, new RegExp(`removed ${environmentFile} \\(the new unit reads none\\)\n`));
  assert.equal(existsSync(environmentFile), false, "the old password stays on disk");
  const listenFile = join(dir.path, "systemd", "user", "interop-listen-bob.env");
  await runCli(["service", "install", "--exec", EXECUTABLE, "listen", "-a", "bob", "--url", "http://u:s3cret@127.0.0.1:18901"], { env });
  assert.equal(existsSync(listenFile), true);
  await runCli(["service", "install", "--exec", EXECUTABLE, "listen", "-a", "bob", "--url", "http://127.0.0.1:18901"], { env });
  assert.equal(existsSync(listenFile), false);
});
