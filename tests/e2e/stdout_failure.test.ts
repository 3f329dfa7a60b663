/**
 * A stdout that fails other than by its reader leaving (a full disk: `> /dev/full`), red team 55: `poll` and
 * `listen` died with a stack trace (Node) or exited 0 (Deno), `status` and `send` exited 0 with their output lost,
 * and `ask` exited 0 having lost the reply it took. Now each says so in one line and exits non-zero; `poll` takes
 * nothing it could not write, and `ask` writes the reply on stderr instead.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import process from "node:process";
import { type TestContext, test } from "node:test";
import { replyToNextQuestion, startBroker } from "../helpers/broker.ts";
import { cliCommand } from "../helpers/cli.ts";

const FAILED = /^error: Cannot write to stdout: [^\n]*; what this command printed is incomplete\n$/;

/** Runs the CLI with its stdout on /dev/full; resolves with its exit code and stderr. */
function toFullDisk(t: TestContext, args: string[]): Promise<{ code: number | null; stderr: string }> {
  const [command, prefix] = cliCommand();
  const full = openSync("/dev/full", "w");
  const child = spawn(command, [...prefix, ...args], { stdio: ["ignore", full, "pipe"], env: { ...process.env, NO_COLOR: "1" } });
  closeSync(full);
  t.after(() => child.exitCode === null && child.kill());
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, stderr })));
}

test("poll, status and send on a stdout that fails say so and exit 1; poll takes nothing it could not write", async (t) => {
  const broker = await startBroker({ args: ["--agents", "hermes,openclaw"] });
  t.after(() => broker.cleanup());
  const url = ["--url", broker.url];
  const sent = await fetch(`${broker.url}/broadcast?from=hermes&to=openclaw`, { method: "POST", body: "kept" });
  assert.equal(sent.status, 200);

  const poll = await toFullDisk(t, ["poll", ...url, "-a", "openclaw"]);
  assert.equal(poll.code, 1, poll.stderr);
  assert.match(poll.stderr, FAILED);
  const pending = await (await fetch(`${broker.url}/poll?agent=openclaw&peek=1`)).json();
  assert.deepEqual(pending.map((message: { text: string }) => message.text), ["kept"], "still pending");

  for (const args of [["status", ...url], ["send", ...url, "-f", "hermes", "-t", "openclaw", "stored"]]) {
    const result = await toFullDisk(t, args);
    assert.equal(result.code, 1, `${args[0]}: ${result.stderr}`);
    assert.match(result.stderr, FAILED);
  }
});

test("ask on a stdout that fails writes the reply it took on stderr and exits 1", async (t) => {
  const broker = await startBroker({ args: ["--agents", "hermes,openclaw"] });
  t.after(() => broker.cleanup());
  const asked = toFullDisk(t, ["ask", "--url", broker.url, "-f", "hermes", "-t", "openclaw", "--timeout", "20", "a question"]);
  const id = await replyToNextQuestion(broker.url, "openclaw", "the answer");
  const result = await asked;
  assert.equal(result.code, 1, result.stderr);
  assert.equal(
    result.stderr,
    `error: Cannot write the reply to stdout; openclaw's reply (id ${id}), taken from hermes's inbox, follows:\nthe answer\n`,
  );
});
