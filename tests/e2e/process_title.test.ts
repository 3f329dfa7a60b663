/** What ps, pgrep and systemd show for a running broker and listener. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import process from "node:process";
import { test } from "node:test";
import { freePort, startBroker, waitFor } from "../helpers/broker.ts";
import { testStops } from "../helpers/clean_up_all.ts";
import { spawnCli, tempDir } from "../helpers/cli.ts";
import { stopListen } from "../helpers/listener.ts";

const comm = (pid: number) => readFileSync(`/proc/${pid}/comm`, "utf8");
const cmdline = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0+/g, " ").trim();

test("a running broker and listener show as interop serve and interop listen in ps and pgrep", async (t) => {
  const stop = testStops(t);
  const dir = tempDir();
  const broker = await startBroker();
  stop(() => broker.cleanup());
  assert.equal(comm(broker.pid), "interop serve\n");

  const listen = spawnCli(["listen", "--agent", "hermes", "--url", broker.url, "--out", `${dir.path}/out.jsonl`]);
  // After hooks run in the order they were added: its directory goes once it stopped writing there.
  stop(async () => {
    await stopListen(listen, "SIGKILL");
    dir.cleanup();
  });
  // Set as the subcommand starts, before it has anything to say: polled, as ps would see it.
  await waitFor(() => comm(listen.pid!) === "interop listen\n", 10_000, "the listener's title");
  // Deno cannot rewrite its command line (process.title sets only comm there).
  if (!("Deno" in globalThis) || process.env.INTEROP_CLI) {
    assert.match(cmdline(broker.pid), /^interop serve --port 0 --data-dir /);
    assert.match(cmdline(listen.pid!), /^interop listen --agent hermes --url http:/);
  }
});

// As a URL parser reads it (and the PostgreSQL client does), a password runs to the last @: "hun@ter2" too.
for (const password of ["hunter2", "hun@ter2"]) {
  test(`a password in a URL on the command line (${password}) is not written back into the process title`, async (t) => {
    // Deno cannot rewrite its command line: there the docs' advice ($INTEROP_DATABASE_URL, --config) is all there is.
    if ("Deno" in globalThis && !process.env.INTEROP_CLI) return t.skip("Deno sets only the process name");
    const dir = tempDir();
    // Nothing listens on that port: the listener keeps retrying, which keeps it running for ps to read.
    const port = await freePort();
    const listen = spawnCli(["listen", "--agent", "hermes", "--url", `http://hermes:${password}@127.0.0.1:${port}`, "--out", `${dir.path}/out.jsonl`]);
    t.after(async () => {
      await stopListen(listen, "SIGKILL");
      dir.cleanup();
    });
    await waitFor(() => comm(listen.pid!) === "interop listen\n", 10_000, "the listener's title");
    assert.doesNotMatch(cmdline(listen.pid!), /ter2/);
    assert.match(cmdline(listen.pid!), new RegExp(`--url http://hermes:\\*\\*\\*@127\\.0\\.0\\.1:${port} `));
  });
}

test("a secret query parameter in a push URL on the command line is not written back into the process title", async (t) => {
  if ("Deno" in globalThis && !process.env.INTEROP_CLI) return t.skip("Deno sets only the process name");
  const port = await freePort();
  const post = `http://127.0.0.1:${port}/in?agent=hermes&token=s3cret`;
  const listen = spawnCli(["listen", "--agent", "hermes", "--url", `http://127.0.0.1:${port}`, "--post", post]);
  t.after(() => stopListen(listen, "SIGKILL"));
  await waitFor(() => comm(listen.pid!) === "interop listen\n", 10_000, "the listener's title");
  assert.doesNotMatch(cmdline(listen.pid!), /s3cret/);
  assert.match(cmdline(listen.pid!), new RegExp(`--post http://127\\.0\\.0\\.1:${port}/in\\?agent=hermes&token=\\*\\*\\*\\s*$`));
});
