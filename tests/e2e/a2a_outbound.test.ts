import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { publish, type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";
import { collect, spawnCli, tempDir } from "../helpers/cli.ts";
import { OpenclawA2aServer, reservePort, SdkAgentServer } from "../helpers/a2a_servers.ts";

const TOKEN = "peer-token-for-interop";

/** Starts `listen --a2a` for `agent`, with its token in a file and its state in `dir`. */
function startA2aListen(broker: RunningBroker, agent: string, a2aUrl: string, dir: string, extra: string[] = []): ChildProcess {
  const tokenFile = join(dir, "a2a-token");
  writeFileSync(tokenFile, TOKEN + "\n");
  return spawnCli([
    "listen", "--agent", agent, "--url", broker.url, "--a2a", a2aUrl, "--a2a-token-file", tokenFile,
    "--state", join(dir, "state.json"), "--verbose", ...extra,
  ]);
}

function stop(child: ChildProcess | undefined, signal: NodeJS.Signals = "SIGTERM") {
  if (child && child.exitCode === null && child.signalCode === null) process.kill(child.pid!, signal);
}

function stderrOf(child: ChildProcess): () => string {
  let text = "";
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
  return () => text;
}

async function inbox(broker: RunningBroker, agent: string): Promise<Array<Record<string, unknown>>> {
  const response = await fetch(`${broker.url}/poll?agent=${agent}&peek=1`);
  return await response.json();
}

async function deadLetters(broker: RunningBroker, agent: string): Promise<Array<{ reason: string; message?: { id: number } }>> {
  const response = await fetch(`${broker.url}/dead-letters?agent=${agent}`);
  const body = await response.json();
  return Array.isArray(body) ? body : body.dead_letters ?? body.letters;
}

test("listen --a2a hands each message once to an SDK A2A server that was down, and the asker gets its answer", async (t) => {
  const broker = await startBroker();
  const dir = tempDir();
  const agent = new SdkAgentServer({ token: TOKEN });
  let listen: ChildProcess | undefined;
  t.after(async () => {
    stop(listen);
    await agent.stop();
    await broker.cleanup();
    dir.cleanup();
  });
  agent.port = await reservePort();
  listen = startA2aListen(broker, "sdkagent", `${agent.url}/`, dir.path);
  const log = stderrOf(listen);
  for (let n = 1; n <= 3; n++) await publish(broker.url, "hermes", "sdkagent", { text: `note ${n}` });
  const ask = spawnCli(["ask", "--url", broker.url, "-f", "hermes", "-t", "sdkagent", "--timeout", "60s", "what is 6 x 7?"]);
  await waitFor(() => /retrying/.test(log()), 20_000, "a failed send while the server is down");
  await agent.start();
  const asked = await collect(ask, 60_000);
  assert.equal(asked.code, 0, asked.stderr);
  assert.equal(asked.stdout.trim(), "echo: what is 6 x 7?");
  await waitFor(() => agent.seen.size === 4, 20_000, "four messages at the agent");
  assert.equal(agent.repeats(), 0);
  // Sent in inbox order, as v1.0 with the header and returnImmediately, each with its interop context.
  assert.deepEqual(agent.order.map((id) => Number(/^interop-(\d+)-/.exec(id)![1])), [1, 2, 3, 4]);
  const send = agent.requests.find((request) => request.method === "SendMessage")!;
  assert.equal(send.version, "1.0");
  const params = send.body.params as { message: { contextId: string; parts: unknown[] }; configuration: { returnImmediately: boolean } };
  assert.equal(params.configuration.returnImmediately, true);
  assert.equal(params.message.contextId, "interop-1");
  assert.deepEqual(params.message.parts, [{ text: "note 1" }]);
  // The answers to the three notes went back to hermes as replies carrying the A2A answer.
  await waitFor(async () => (await inbox(broker, "hermes")).length === 3, 20_000, "three answers in hermes's inbox");
  const answers = await inbox(broker, "hermes");
  assert.deepEqual(answers.map((answer) => answer.text).sort(), ["echo: note 1", "echo: note 2", "echo: note 3"]);
  for (const answer of answers) {
    const meta = answer.interop as { from: string; reply_to: number };
    assert.equal(meta.from, "sdkagent");
    assert.equal((answer.a2a as { contextId: string }).contextId, `interop-${meta.reply_to}`);
  }
});
