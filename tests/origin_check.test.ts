import assert from "node:assert/strict";
import { test } from "node:test";
import { checkOrigin } from "../src/http/origin_check.ts";
import type { IncomingRequest } from "../src/runtime/types.ts";

const handler = checkOrigin(
  () => Promise.resolve({ status: 200, headers: {}, body: "passed" }),
  { bindHost: "broker.internal", allowedHosts: ["interop.example.com"] },
);

/** The status a request with these headers gets (200: it reached the routes). */
async function statusOf(headers: Record<string, string>, method = "POST", path = "/broadcast"): Promise<number> {
  const request: IncomingRequest = {
    method,
    url: new URL(`http://localhost${path}`),
    header: (name) => headers[name] ?? null,
    headerBytes: () => 0,
    text: () => Promise.resolve(""),
    clientGone: () => new AbortController().signal,
  };
  return (await handler(request)).status;
}

test("checkOrigin() takes IP addresses, localhost names, --host and --allowed-hosts as Host, in any case, with any port", async () => {
  for (const host of ["127.0.0.1", "127.0.0.1:18900", "[::1]:18900", "[fe80::1]", "192.168.1.20:80", "LocalHost:1", "a.localhost",
    "broker.internal:18900", "Interop.Example.com"]) {
    assert.equal(await statusOf({ host }), 200, host);
  }
});

// Red team, session 52: browsers send no Sec-Fetch-Site to these (not loopback in their eyes), yet they reach it.
test("checkOrigin() refuses the unspecified addresses and IPv4 addresses written as IPv6, in every spelling", async () => {
  for (const host of ["0.0.0.0", "0.0.0.0:18900", "[::]", "[::]:18900", "[0:0::0]", "[::ffff:127.0.0.1]:18900", "[::ffff:7f00:1]", "[0:0:0:0:0:FFFF:7F00:1]", "[::ffff:0.0.0.0]"]) {
    assert.equal(await statusOf({ host }, "GET", "/poll"), 403, host);
  }
  assert.equal(await statusOf({ host: "0.0.0.0" }, "GET", "/ui"), 403, "not even the page: the name itself is refused");
});

test("checkOrigin() refuses a Host that names anything else, rebinding services' names and malformed values included", async () => {
  for (const host of ["evil.example", "127.0.0.1.nip.io", "localhost.evil.example", "0x7f.1", "evil@127.0.0.1", "[::1", "a b", ""]) {
    assert.equal(await statusOf({ host }), 403, JSON.stringify(host));
  }
});

test("checkOrigin() takes an Origin that is the Host's own, or names an --allowed-hosts name, and refuses any other", async () => {
  assert.equal(await statusOf({ host: "127.0.0.1:80", origin: "http://127.0.0.1" }), 200, "a default port written out");
  assert.equal(await statusOf({ host: "[::1]:8080", origin: "http://[::1]:8080" }), 200);
  assert.equal(await statusOf({ host: "127.0.0.1:18900", origin: "https://interop.example.com" }), 200, "behind a proxy");
  assert.equal(await statusOf({ host: "interop.example.com", origin: "https://interop.example.com" }), 200, "a TLS proxy passing Host");
  for (const origin of ["http://127.0.0.1:18901", "http://localhost:18900", "null", "chrome-extension://abc", "x"]) {
    assert.equal(await statusOf({ host: "127.0.0.1:18900", origin }), 403, origin);
  }
  assert.equal(await statusOf({ origin: "https://evil.example" }), 403, "without Host");
});

test("checkOrigin() lets any site link to the dashboard's page, never to the data", async () => {
  const crossSite = { host: "127.0.0.1", "sec-fetch-site": "cross-site" };
  for (const path of ["/", "/ui", "/ui/app.js"]) {
    assert.equal(await statusOf(crossSite, "GET", path), 200, path);
    assert.equal(await statusOf(crossSite, "HEAD", path), 200, `HEAD ${path}`);
  }
  for (const path of ["/status", "/events", "/poll", "/ui/other"]) assert.equal(await statusOf(crossSite, "GET", path), 403, path);
  assert.equal(await statusOf({ ...crossSite, host: "evil.example" }, "GET", "/ui"), 403, "a foreign Host even for the page");
});
