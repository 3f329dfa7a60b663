// A listen restarted with another --url for the same broker (a failover URL added, another spelling) resumes by id.
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { freePort, type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";
import { testStops } from "../helpers/clean_up_all.ts";
import { spawnCli, tempDir } from "../helpers/cli.ts";
import { stopAll, stopListen } from "../helpers/listener.ts";

/** A push receiver that accepts message bodies while `open`, and holds every other request unanswered (a stalled agent). */
async function stallingReceiver() {
  const accepted: string[] = [];
  const held: ServerResponse[] = [];
  const state = { open: true };
  const server = createServer(async (request: IncomingMessage, response: ServerResponse) => {
    let body = "";
    for await (const chunk of request) body += chunk;
    if (!state.open) return void held.push(response);
    accepted.push(JSON.parse(body).text);
    response.writeHead(200).end("{}");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/inbox`,
    accepted,
    held,
    state,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

test("a listen restarted with a failover URL added resumes after its last pushed id: what the stopped one was sent and had not pushed comes", async (t) => {
  const stop = testStops(t);
  const dir = tempDir();
  stop(() => dir.cleanup());
  const receiver = await stallingReceiver();
  stop(() => receiver.close());
  const broker: RunningBroker = await startBroker({ args: ["--agents", "hermes,openclaw"] });
  stop(() => broker.cleanup());
  const state = join(dir.path, "state.json");
  const listen = (url: string) => spawnCli(["listen", "--agent", "openclaw", "--url", url, "--post", receiver.url, "--state", state]);
  let first = listen(broker.url);
  let second: ReturnType<typeof listen> | undefined;
  stop(() => stopAll(first, second));

  const publish = (text: string) =>
    fetch(`${broker.url}/broadcast?from=hermes&to=openclaw`, { method: "POST", body: JSON.stringify({ text }) }).then((r) => r.text());
  await publish("m1");
  await waitFor(() => receiver.accepted.length === 1, 10_000, "m1 to be pushed");
  receiver.state.open = false;
  for (const text of ["m2", "m3", "m4"]) await publish(text);
  // The broker wrote all three to the stream (nothing pending), and the first push hangs at the receiver.
  await waitFor(async () => {
    const status = await (await fetch(`${broker.url}/status`)).json();
    return status.queues.openclaw === 0 && receiver.held.length === 1;
  }, 10_000, "m2..m4 to be streamed to listen and m2's push to hang");
  await stopListen(first, "SIGKILL");
  receiver.state.open = true;
  for (const response of receiver.held) response.destroy();

  // The operator adds a failover broker URL (nothing listens there yet): the URL list changed, the broker did not.
  second = listen(`${broker.url},http://127.0.0.1:${await freePort()}`);
  await waitFor(() => receiver.accepted.length >= 4, 15_000, `m2..m4 after the restart (got ${receiver.accepted.join(",")})`);
  assert.deepEqual(receiver.accepted, ["m1", "m2", "m3", "m4"]);
});
