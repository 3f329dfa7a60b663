import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";
import { spawnCli, tempDir } from "../helpers/cli.ts";
import { Ledger, Publisher } from "../helpers/ledger.ts";
import { stopListen } from "../helpers/listener.ts";
import { SdkAgentServer } from "../helpers/a2a_servers.ts";

const TOKEN = "ledger-peer-token";
const MESSAGES = 120;

test("listen --a2a with the broker and the listener SIGKILLed and restarted: no A2A message lost or repeated, each answered once", async (t) => {
  const dir = tempDir();
  const dataDir = join(dir.path, "data");
  let broker: RunningBroker = await startBroker({ dataDir });
  const port = broker.port;
  const agent = new SdkAgentServer({ token: TOKEN, workMs: 20 });
  const tokenFile = join(dir.path, "token");
  writeFileSync(tokenFile, TOKEN);
  let listen: ChildProcess | undefined;
  t.after(async () => {
    if (listen !== undefined) await stopListen(listen, "SIGKILL");
    await agent.stop();
    await broker.cleanup();
    dir.cleanup();
  });
  await agent.start();
  const startA2aListen = () =>
    spawnCli([
      "listen",
      "--agent",
      "sdkagent",
      "--url",
      broker.url,
      "--a2a",
      `${agent.url}/`,
      "--a2a-token-file",
      tokenFile,
      "--state",
      join(dir.path, "state.json"),
      "--post-timeout",
      "5s",
    ]);
  listen = startA2aListen();
  const ledger = new Ledger();
  const publishers = ["p1", "p2"].map((name) => new Publisher(ledger, name, () => broker.url, "hermes", "sdkagent"));
  const publishing = Promise.all(publishers.map((publisher) => publisher.publish(MESSAGES / 2)));
  for (let fault = 0; fault < 6; fault++) {
    await new Promise((resolve) => setTimeout(resolve, 150 + Math.random() * 350));
    if (fault % 2 === 0) {
      await stopListen(listen, "SIGKILL");
      listen = startA2aListen();
    } else {
      await broker.stop("SIGKILL");
      broker = await startBroker({ port, dataDir });
    }
  }
  await publishing;

  const keyOf = (messageId: string) => (agent.data.get(messageId)?.[0] as { key?: string } | undefined)?.key;
  const received = () => new Set([...agent.seen.keys()].map(keyOf));
  const parked = async () =>
    (await (await fetch(`${broker.url}/dead-letters?agent=sdkagent`)).json()) as Array<{ id: number; reason: string }>;
  // Every acknowledged message reached the agent, or was parked because the listener died mid-send (in doubt).
  await waitFor(
    async () => {
      const inDoubt = new Set((await parked()).map((letter) => letter.id));
      return [...ledger.acked].every(([key, id]) => received().has(key) || inDoubt.has(id));
    },
    60_000,
    "every acknowledged message at the agent or parked",
  );
  assert.equal(agent.repeats(), 0, "no messageId reached the agent twice");
  const letters = await parked();
  for (const letter of letters) assert.match(letter.reason, /may or may not have it/);
  // Each message the agent got through a followed task is answered once (the answers carry their publish key).
  const followed = [...agent.seen.keys()].filter((messageId) =>
    !letters.some((letter) => messageId.startsWith(`interop-${letter.id}-`))
  );
  let answers: Array<{ interop: { reply_to: number } }> = [];
  await waitFor(
    async () => {
      answers = await (await fetch(`${broker.url}/poll?agent=hermes&peek=1&limit=10000`)).json();
      return answers.length >= followed.length;
    },
    60_000,
    "an answer per followed message",
  );
  const answered = answers.map((answer) => answer.interop.reply_to);
  assert.equal(new Set(answered).size, answered.length, "no message answered twice");
  assert.equal(answered.length, followed.length);
  console.log(
    `A2A ledger: ${
      JSON.stringify({
        acked: ledger.acked.size,
        unanswered: ledger.unanswered.size,
        atAgent: agent.seen.size,
        inDoubt: letters.length,
        answers: answered.length,
      })
    }`,
  );
});
