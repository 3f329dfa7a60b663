/** `interop completion`: scripts the real shells load and complete with, offering every option every command takes. */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { SUBCOMMANDS } from "../../src/cli/commands.ts";
import { runCli, tempDir } from "../helpers/cli.ts";

async function script(shell: string, dir: string): Promise<string> {
  const result = await runCli(["completion", shell]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stderr, "");
  const file = join(dir, `interop.${shell}`);
  writeFileSync(file, result.stdout);
  return file;
}

/** What bash's completion offers for a command line (the cursor at its end). */
function bashComplete(file: string, line: string): string[] {
  const words = line.split(" ");
  const program = `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _interop; printf '%s\\n' "\${COMPREPLY[@]}"`;
  return execFileSync("bash", ["-c", program, "bash", file, ...words], { encoding: "utf8" }).split("\n").filter((word) => word !== "");
}

/** What fish's own completion engine offers (complete -C), names only. */
function fishComplete(file: string, line: string): string[] {
  const output = execFileSync("fish", ["--no-config", "-c", `source ${file}; complete -C ${JSON.stringify(line)}`], { encoding: "utf8" });
  return output.split("\n").filter((row) => row !== "").map((row) => row.split("\t")[0]);
}

test("interop completion bash completes commands, words, every option of every command, and files after a value", async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const file = await script("bash", dir.path);
  assert.deepEqual(bashComplete(file, "interop se"), ["serve", "send", "service"]);
  assert.deepEqual(bashComplete(file, "interop token "), ["create", "list", "revoke", "--agent", "-a", "--id", "--data-dir", "--database-url", "--config", "--json", "-j", "--admin", "--help", "-h"]);
  assert.deepEqual(bashComplete(file, "interop help sta"), ["status"]);
  assert.deepEqual(bashComplete(file, "interop agent re"), ["remove", "redeliver"]);
  assert.deepEqual(bashComplete(file, "interop serve --max-p"), ["--max-pending"]);
  writeFileSync(join(dir.path, "tokens-file"), "");
  assert.deepEqual(bashComplete(file, `interop listen --token-file ${dir.path}/tok`), [`${dir.path}/tokens-file`]);
  // Generated from the grammar: whatever a command parses, completion offers.
  for (const [name, load] of Object.entries(SUBCOMMANDS)) {
    const { OPTIONS = {} } = await load();
    for (const option of Object.keys(OPTIONS)) {
      assert.deepEqual(bashComplete(file, `interop ${name} --${option}`).filter((word) => word === `--${option}`), [`--${option}`], `${name} --${option}`);
    }
  }
});

test("interop completion fish completes through fish's own engine, with each option's help line", async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const file = await script("fish", dir.path);
  assert.ok(fishComplete(file, "interop ").includes("completion"));
  assert.deepEqual(fishComplete(file, "interop integrate o"), ["openclaw"]);
  assert.deepEqual(fishComplete(file, "interop serve --log-f"), ["--log-format"]);
  const described = execFileSync("fish", ["--no-config", "-c", `source ${file}; complete -C "interop serve --durab"`], { encoding: "utf8" });
  assert.match(described, /^--durability\tstrict \(default\): fsync every commit/);
  // An option whose flag fills its column has its help on the line below: that line is its description.
  const wrapped = execFileSync("fish", ["--no-config", "-c", `source ${file}; complete -C "interop status --max-d"`], { encoding: "utf8" });
  assert.match(wrapped, /^--max-dead-letters\tunhealthy if any agent has more than N dead letters\n$/);
});

test("interop completion zsh loads into zsh's completion system; an unknown shell is a usage error", async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const file = await script("zsh", dir.path);
  execFileSync("zsh", ["-n", file]);
  const loaded = execFileSync("zsh", ["-fc", `autoload -Uz compinit && compinit -u -d ${dir.path}/zcompdump && source ${file} && print -r -- $_comps[interop]`], { encoding: "utf8" });
  assert.equal(loaded, "_interop\n");
  const bad = await runCli(["completion", "powershell"]);
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr, `error: Name one shell instead of "powershell": bash, zsh or fish; see 'interop completion --help'\n`);
});
