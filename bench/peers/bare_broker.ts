/**
 * The runtime's ceiling: the old bridge's routes with nothing behind them (no storage, no validation, no ids
 * kept), on `node:http` under Node and on `Deno.serve` under Deno. interop's distance from it is its own cost.
 *
 *   node bench/peers/bare_broker.ts PORT     |     deno run -A bench/peers/bare_broker.ts PORT
 */
import * as http from "node:http";
import process from "node:process";

type Send = (frame: string) => void;
const subscribers = new Map<string, Set<Send>>();
let nextId = 0;

/** Delivers a publish to `to`, or to every subscribed agent but the sender; answers what the route answers. */
function route(method: string, url: URL, body: string, subscribe: (agent: string) => void): [number, string | Uint8Array<ArrayBuffer>] | undefined {
  if (method === "POST" && url.pathname === "/broadcast") {
    const to = url.searchParams.get("to");
    const from = url.searchParams.get("from");
    const frame = `id: ${++nextId}\ndata: ${body}\n\n`;
    for (const [agent, sends] of subscribers) if (to === null ? agent !== from : agent === to) for (const send of sends) send(frame);
    return [200, `{"delivered":true,"id":${nextId}}`];
  }
  if (url.pathname === "/subscribe") return subscribe(url.searchParams.get("agent") ?? ""), undefined;
  if (url.pathname === "/poll") return [200, "[]"];
  if (url.pathname === "/status") return [200, statusDocument()];
  return [404, '{"error":"not found"}'];
}

/**
 * `/status` as large as interop's (each subscribed agent with the figures interop reports, ~190 KB for 1,000), so
 * its latency is the ceiling for an answer of that size; encoded again only when the subscribers change.
 */
let status: Uint8Array<ArrayBuffer> | undefined;
function statusDocument(): Uint8Array<ArrayBuffer> {
  if (status !== undefined) return status;
  const agents: Record<string, object> = {};
  const queues: Record<string, number> = {};
  const subscribed: Record<string, boolean> = {};
  let streams = 0;
  for (const [agent, sends] of subscribers) {
    agents[agent] = {
      online: true, streams: sends.size, waiting: 0, pending: 0, delivered_id: nextId, last_seen: new Date().toISOString(),
      dead_letters: 0, expired: 0, redelivered: 0,
    };
    queues[agent] = 0;
    subscribed[agent] = sends.size > 0;
    streams += sends.size;
  }
  return status = new TextEncoder().encode(JSON.stringify({ agents, queues, subscribers: subscribed, streams }));
}

function attach(agent: string, send: Send): () => void {
  const sends = subscribers.get(agent) ?? subscribers.set(agent, new Set()).get(agent)!;
  sends.add(send);
  status = undefined;
  return () => {
    sends.delete(send);
    status = undefined;
  };
}

const port = Number(process.argv[2] ?? 0);
const listening = (actual: number) => console.error(`listening on http://127.0.0.1:${actual}`);
if ("Deno" in globalThis) {
  const encoder = new TextEncoder();
  Deno.serve({ hostname: "127.0.0.1", port, onListen: ({ port }) => listening(port) }, async (request) => {
    let stream: Response | undefined;
    const answer = route(request.method, new URL(request.url), await request.text(), (agent) => {
      let detach = () => {};
      stream = new Response(new ReadableStream<Uint8Array>({
        start: (controller) => void (detach = attach(agent, (frame) => controller.enqueue(encoder.encode(frame)))),
        cancel: () => detach(),
      }), { headers: { "content-type": "text/event-stream" } });
    });
    return stream ?? new Response(answer![1], { status: answer![0], headers: { "content-type": "application/json" } });
  });
} else {
  const server = http.createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8").on("data", (chunk) => (body += chunk)).on("end", () => {
      const answer = route(req.method!, new URL(req.url!, "http://x"), body, (agent) => {
        res.writeHead(200, { "content-type": "text/event-stream" }).flushHeaders();
        res.on("close", attach(agent, (frame) => res.write(frame)));
      });
      if (answer === undefined) return;
      const [status, text] = answer;
      // With its length in the head (writeHead builds the head at once), the answer is not sent chunked.
      const length = typeof text === "string" ? Buffer.byteLength(text) : text.length;
      res.writeHead(status, { "content-type": "application/json", "content-length": length }).end(text);
    });
  });
  server.requestTimeout = 0;
  server.listen(port, "127.0.0.1", () => listening((server.address() as { port: number }).port));
}
