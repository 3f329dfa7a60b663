/** `deno task serve` and `deno task test` as a Deno user runs them, in a fresh copy of the repository after `npm ci`. */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { cpSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { promisify } from "node:util";
import { waitFor } from "../helpers/broker.ts";
import { tempDir } from "../helpers/cli.ts";

const ROOT = join(import.meta.dirname!, "..", "..");
/** The Deno `npm ci` installs, which a Deno user may have on PATH as well. */
const DENO = join(ROOT, "node_modules", "deno", "deno");

/** A checkout as `git clone` + `npm ci` leave it: the sources, no dist/, node_modules beside them; one small test. */
function freshCopy(dir: string): string {
  const copy = join(dir, "interop");
  for (const path of ["deno.json", "package.json", "src", "tests/relative_time.test.ts"]) {
    cpSync(join(ROOT, path), join(copy, path), { recursive: true });
  }
  symlinkSync(join(ROOT, "node_modules"), join(copy, "node_modules"));
  return copy;
}

test("deno task serve starts the broker and deno task test runs the tests, with npm's Deno in node_modules/.bin", async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const copy = freshCopy(dir.path);
  // deno task puts node_modules/.bin first on PATH; its `deno` there is the binary npm installed.
  const env = { ...process.env, PATH: `${join(copy, "node_modules", ".bin")}:${process.env.PATH}`, NO_COLOR: "1" };

  // Its own process group: deno task runs the broker as a child, and both are stopped by the group's id.
  const serve = spawn(DENO, ["task", "serve", "--port", "0", "--data-dir", join(dir.path, "data")], { cwd: copy, env, detached: true });
  const exited = new Promise((resolve) => serve.on("close", resolve));
  t.after(async () => {
    if (serve.exitCode === null && serve.signalCode === null) process.kill(-serve.pid!, "SIGKILL");
    await exited;
  });
  let stderr = "";
  serve.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const url = await waitFor(() => {
    if (serve.exitCode !== null) throw new Error(`deno task serve exited ${serve.exitCode}: ${stderr}`);
    return /listening on (http:\/\/\S+)/.exec(stderr)?.[1];
  }, 60_000, "deno task serve to listen");
  const status = await (await fetch(`${url}/status`)).json();
  assert.equal(status.service, "interop");
  assert.match(status.runtime, /^deno /);
  process.kill(-serve.pid!, "SIGTERM");
  await exited;

  const tests = await promisify(execFile)(DENO, ["task", "test"], { cwd: copy, env });
  assert.match(tests.stdout, /ok \| 2 passed \| 0 failed/);
});
