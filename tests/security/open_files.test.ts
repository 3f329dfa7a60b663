/**
 * A broker under a low open-file limit (`ulimit -n`) keeps its connections within it: a flood of connections is
 * turned away by the connection cap, and a Deno broker that runs out of file descriptors all the same (its node:net
 * frees them late) listens anew rather than accepting nothing more, for good, while the process lives on.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { startBroker, waitFor } from "../helpers/broker.ts";
import { type RawClient, rawClient } from "../helpers/raw_client.ts";
import { LISTENER_CHECK_MS } from "../../src/runtime/listener_watch.ts";

test("under ulimit -n 200 the broker lowers --max-connections to fit, survives 600 idle connections, and serves after them", async (t) => {
  const broker = await startBroker({ openFiles: 200 });
  const flood: RawClient[] = [];
  t.after(async () => {
    for (const client of flood) client.socket.destroy();
    await broker.cleanup();
  });
  assert.match(broker.log(), /--max-connections 4096 needs ~8264 open files but the limit \(ulimit -n\) is 200: serving at most 64 connections/);
  // In bursts of 150 at once: the broker accepts each burst in one go, as a real flood has it do.
  for (let burst = 0; burst < 4; burst++) {
    await Promise.all(Array.from({ length: 150 }, () => rawClient(broker.url, "", (client) => flood.push(client))));
  }
  // The cap closed the oldest as new ones came: the broker held at most its 64, and still answers. (Deno's node:net
  // frees a closed socket's descriptor later than it accepts the next, so this flood can run it out, after which its
  // listener accepts nothing more: the broker then listens anew within a few seconds, and those queued are reset.)
  await waitFor(() => flood.filter((client) => !client.closed()).length <= 64, 10_000, "the broker to keep at most 64 of them");
  const status = () => fetch(`${broker.url}/status`, { signal: AbortSignal.timeout(5000) }).then((answer) => answer.status);
  assert.equal(await status(), 200, "served during the flood");

  for (const client of flood) client.socket.destroy();
  await waitFor(async () => await status() === 200, 5000, "the broker to serve after the flood");
});

test("a broker that nobody connects to keeps listening as it is (Deno's listener watch finds it accepting)", async (t) => {
  const broker = await startBroker();
  t.after(() => broker.cleanup());
  // Three of the watch's periods (LISTENER_CHECK_MS): each probes the listener, which accepts the probe.
  await new Promise((resolve) => setTimeout(resolve, 3 * LISTENER_CHECK_MS + 500));
  assert.doesNotMatch(broker.log(), /listening again/);
  assert.equal((await fetch(`${broker.url}/status`)).status, 200);
});

test("a cap full of idle connections loses none of them to Deno's listener watch (its probe takes no place)", async (t) => {
  const broker = await startBroker({ args: ["--max-connections", "20"] });
  const idle: RawClient[] = [];
  t.after(async () => {
    for (const client of idle) client.socket.destroy();
    await broker.cleanup();
  });
  // Connections that send nothing fill the cap on connections with no request (--max-connections, counted apart),
  // where a new one closes the oldest: before, each probe after a quiet period was such a new one.
  for (let i = 0; i < 20; i++) await rawClient(broker.url, "", (client) => idle.push(client));
  // Four of the watch's periods: the first quiet one, then probes (a request here would itself close one).
  await new Promise((resolve) => setTimeout(resolve, 4 * LISTENER_CHECK_MS + 500));
  assert.deepEqual(idle.map((client) => client.closed()), idle.map(() => false), "every idle connection is still open");
  assert.doesNotMatch(broker.log(), /listening again/);
});
