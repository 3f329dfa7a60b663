import assert from "node:assert/strict";
import { test } from "node:test";
import { reachingHost } from "../src/cli/bind_host.ts";
import { brokerUrl, brokerUrls, parseByteSize, parseCount, parseDuration, parseFlags, readSecret } from "../src/cli/args.ts";
import { legacyBodyFlag } from "../src/cli/message_input.ts";
import { OPTIONS as SERVE_OPTIONS } from "../src/cli/serve.ts";
import { readServeSettings } from "../src/cli/serve_settings.ts";
import { closestWord } from "../src/cli/suggest.ts";
import { backoffDelay } from "../src/client/backoff.ts";
import { CONNECT_FAILURES, describeCause } from "../src/client/fetch_failures.ts";
import { splitCredentials } from "../src/client/url_credentials.ts";
import { redactCredentials, redactUrl } from "../src/url_redaction.ts";

test("parseDuration() reads ms, s, m, h and d, and bare numbers as seconds", () => {
  assert.equal(parseDuration("serve", "--x", "500ms"), 500);
  assert.equal(parseDuration("serve", "--x", "15s"), 15_000);
  assert.equal(parseDuration("serve", "--x", "10m"), 600_000);
  assert.equal(parseDuration("serve", "--x", "24h"), 86_400_000);
  assert.equal(parseDuration("serve", "--x", "2"), 2000);
  assert.throws(() => parseDuration("serve", "--retention", "soon"), /Invalid --retention: "soon".*interop serve --help/);
});

test("parseDuration() refuses values outside the flag's bounds, naming them in units", () => {
  assert.equal(parseDuration("ask", "--timeout", "2m", { min: 1000, max: 3_600_000 }), 120_000);
  assert.throws(() => parseDuration("ask", "--timeout", "2h", { min: 1000, max: 3_600_000 }), /Invalid --timeout: "2h"; use from 1s to 1h;/);
  assert.throws(() => parseDuration("listen", "--idle-timeout", "0", { min: 1000 }), /use at least 1s;/);
});

test("legacyBodyFlag() turns --json JSON into --data JSON, and leaves --json before TEXT and after -- alone", () => {
  assert.deepEqual(legacyBodyFlag(["--json", '{"a":1}', "-j"]), ["--data", '{"a":1}', "-j"]);
  assert.deepEqual(legacyBodyFlag(["--json", "[1]"]), ["--data", "[1]"]);
  assert.deepEqual(legacyBodyFlag(["--json=x"]), ["--data=x"]);
  assert.deepEqual(legacyBodyFlag(["--json", "hello"]), ["--json", "hello"]);
  assert.deepEqual(legacyBodyFlag(["--", "--json", "{}"]), ["--", "--json", "{}"]);
});

test("brokerUrl() reads HOST:PORT as http://HOST:PORT and keeps a scheme that is given", () => {
  assert.equal(brokerUrl("send", "127.0.0.1:19501", {}), "http://127.0.0.1:19501");
  assert.equal(brokerUrl("send", "https://interop.example/base/", {}), "https://interop.example/base");
  assert.equal(brokerUrl("send", undefined, { INTEROP_URL: "localhost:18900" }), "http://localhost:18900");
  assert.equal(brokerUrl("send", undefined, { INTEROP_URL: "" }), "http://127.0.0.1:18900");
  assert.throws(() => brokerUrl("send", "ftp://x", {}), /Invalid --url: "ftp:\/\/x"; use http:\/\/HOST:PORT or HOST:PORT/);
});

test("describeCause() names Deno's prose fetch errors by the errno Node reports", () => {
  const deno = (message: string) => Object.assign(new TypeError("fetch failed"), { cause: new Error(message) });
  assert.equal(
    describeCause(deno("error sending request for url (http://127.0.0.1:1/): client error (Connect): tcp connect error: Connection refused (os error 111)")),
    "ECONNREFUSED",
  );
  assert.equal(describeCause(deno("client error (Connect): dns error: failed to lookup address information: Name or service not known")), "ENOTFOUND");
  assert.equal(describeCause(new TypeError("Fetch failed: Requests to port 9 are blocked")), "bad port");
  assert.equal(
    describeCause(deno("error sending request from 127.0.0.1:5 for http://127.0.0.1:9900/a2a?token=s3cret (127.0.0.1:9900): client error (SendRequest): connection closed before message completed")),
    "error sending request from 127.0.0.1:5 for http://127.0.0.1:9900/a2a?token=*** (127.0.0.1:9900): client error (SendRequest): connection closed before message completed",
  );
  const node = Object.assign(new TypeError("fetch failed"), { cause: Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }) });
  assert.equal(describeCause(node), "ECONNREFUSED");
});

test("describeCause() says Node fetch's own failure codes in words, the code after them", () => {
  const node = (code: string) => Object.assign(new TypeError("fetch failed"), { cause: Object.assign(new Error("other side closed"), { code }) });
  assert.equal(describeCause(node("UND_ERR_SOCKET")), "the connection closed before an answer came (UND_ERR_SOCKET)");
  assert.ok(!CONNECT_FAILURES.has(describeCause(node("UND_ERR_SOCKET"))), "closed after the request went: it may have been done");
  assert.ok(CONNECT_FAILURES.has(describeCause(node("UND_ERR_CONNECT_TIMEOUT"))), "no connection made: nothing was sent");
  assert.equal(describeCause(node("ECONNRESET")), "ECONNRESET");
});

test("parseByteSize() reads bytes, KiB, MiB and GiB", () => {
  assert.equal(parseByteSize("serve", "--x", "4096"), 4096);
  assert.equal(parseByteSize("serve", "--x", "512KiB"), 524_288);
  assert.equal(parseByteSize("serve", "--x", "1MiB"), 1_048_576);
  assert.throws(() => parseByteSize("serve", "--max-body-bytes", "1 MB"), /Invalid --max-body-bytes/);
});

test("parseCount() rejects non-numbers and values out of range", () => {
  assert.equal(parseCount("serve", "--port", "18900", 0, 65535), 18900);
  assert.throws(() => parseCount("serve", "--port", "70000", 0, 65535), /from 0 to 65535/);
  assert.throws(() => parseCount("serve", "--port", "-1", 0, 65535), /Invalid --port/);
});

test("backoffDelay() grows exponentially with jitter and stays under the cap", () => {
  const options = { initialMs: 500, maxMs: 30_000 };
  assert.equal(backoffDelay(0, options, () => 0), 250);
  assert.equal(backoffDelay(0, options, () => 1), 500);
  assert.equal(backoffDelay(3, options, () => 1), 4000);
  assert.equal(backoffDelay(50, options, () => 1), 30_000);
  assert.equal(backoffDelay(50, options, () => 0), 15_000);
});

test("describeCause() never repeats a header value fetch refused: it may be the token", () => {
  const refused = new TypeError('Headers.append: "Bearer # hermes token\nitk_secret" is an invalid header value.');
  assert.equal(describeCause(refused), "a request header has an invalid value (not shown: it may be a token)");
});

test("readSecret() refuses a header secret past printable ASCII without repeating it, and keeps a key's spaces", () => {
  assert.throws(() => readSecret(undefined, "itk_s3cr€t", "$INTEROP_TOKEN"), (error: Error) => {
    assert.match(error.message, /^\$INTEROP_TOKEN does not hold one token: it contains white space, a control character or a character past ASCII/);
    assert.ok(!error.message.includes("s3cr"));
    return true;
  });
  assert.equal(readSecret(undefined, " correct horse battery staple\n", "$HERMES_WEBHOOK_SECRET", "key"), "correct horse battery staple");
});

test("redactCredentials() hides a URL's password (up to the last @ before the host) and keeps the rest", () => {
  assert.equal(redactCredentials("at http://hermes:hun@ter2@127.0.0.1:18900/status: refused"), "at http://hermes:***@127.0.0.1:18900/status: refused");
  assert.equal(redactCredentials("http://127.0.0.1:18900 and https://u:p@h:1,http://v:q@h:2"), "http://127.0.0.1:18900 and https://u:***@h:1,http://v:***@h:2");
  assert.equal(redactCredentials('{"text":"mail me@host"}'), '{"text":"mail me@host"}');
});

test("redactUrl() hides a user alone, a password with a space, and everything before the @ of a URL that does not parse", () => {
  assert.equal(redactUrl("http://itk_s3cret@127.0.0.1:18900"), "http://***@127.0.0.1:18900");
  assert.equal(redactUrl("http://alice:s3cret pw@127.0.0.1:18900"), "http://alice:***@127.0.0.1:18900");
  assert.equal(redactUrl("http://alice:s3cret/pw@127.0.0.1:18900"), "http://***@127.0.0.1:18900");
  assert.equal(redactUrl("alice:s3cret@127.0.0.1:18900"), "alice:***@127.0.0.1:18900");
  assert.equal(redactUrl("http://127.0.0.1:18900/a@b"), "http://127.0.0.1:18900/a@b");
  assert.equal(redactUrl("127.0.0.1:18900"), "127.0.0.1:18900");
  // A PostgreSQL URL's user is a role name, not a secret; its password is.
  assert.equal(redactUrl("postgres://interop@db:5432/interop"), "postgres://interop@db:5432/interop");
  assert.equal(redactUrl("postgres://interop:s3cret@db:5432/interop"), "postgres://interop:***@db:5432/interop");
  assert.equal(redactUrl("postgres://interop:s3/cret@db:5432/interop"), "postgres://interop:***@db:5432/interop");
  // A password a URL parser reads as a port and a path, a query or a fragment; one with an @ and then a /.
  for (const url of ["postgres://u:2024/s3cret@db:5432/x", "postgres://u:123#s3cret@db/x", "postgres://u:99?s3cret@db/x"]) {
    assert.equal(redactUrl(url), url.replace(/:[^:]*s3cret/, ":***"), url);
  }
  assert.equal(redactUrl("postgres://u:s3@c/ret@db/x"), "postgres://u:***@db/x");
  assert.equal(redactCredentials("use postgres://USER@HOST:PORT/DB; see"), "use postgres://USER@HOST:PORT/DB; see");
  assert.equal(redactCredentials('error: at "http://itk_s3cret@h:1": refused'), 'error: at "http://***@h:1": refused');
  // A sentence's colon after a URL the client redacted already leaves its user shown.
  assert.equal(redactCredentials("at http://hermes:***@h:1: refused; http://t0k@h:2."), "at http://hermes:***@h:1: refused; http://***@h:2.");
});

test("redactUrl() hides the values of query parameters that hold secrets and keeps the others readable", () => {
  const hidden: Array<[string, string]> = [
    ["https://hooks.example.com/in?token=abc", "https://hooks.example.com/in?token=***"],
    ["http://127.0.0.1:18789/hooks/agent?token=s3cret&agentId=main", "http://127.0.0.1:18789/hooks/agent?token=***&agentId=main"],
    ["https://chat.googleapis.com/v1/spaces/X/messages?key=AIza1&token=t0k", "https://chat.googleapis.com/v1/spaces/X/messages?key=***&token=***"],
    ["https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sp=r&sig=abc%2Fdef%3D", "https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sp=r&sig=***"],
    ["https://fn.azurewebsites.net/api/in?code=xyz", "https://fn.azurewebsites.net/api/in?code=***"],
    ["https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA%2F1&X-Amz-Date=20261201T000000Z&X-Amz-Security-Token=st&X-Amz-Signature=5f", "https://b.s3.amazonaws.com/k?X-Amz-Credential=***&X-Amz-Date=20261201T000000Z&X-Amz-Security-Token=***&X-Amz-Signature=***"],
    ["https://h/in?ACCESS_TOKEN=a&Api-Key=b&apikey=c&client_secret=d&password=e&pass=f&pwd=g&auth=h&subscription-key=i", "https://h/in?ACCESS_TOKEN=***&Api-Key=***&apikey=***&client_secret=***&password=***&pass=***&pwd=***&auth=***&subscription-key=***"],
    // A name as the server decodes it; a name after `;`; a `;` or `?` inside a secret value; a URL nested in another's value.
    ["https://h/in?api%5Fkey=a&to%6Ben=b", "https://h/in?api%5Fkey=***&to%6Ben=***"],
    ["https://h/in?a=1;token=s3c;ret?x&b=2", "https://h/in?a=1;token=***&b=2"],
    ["https://h/login?next=https://i/cb?token=s3cret&lang=en", "https://h/login?next=https://i/cb?token=***&lang=en"],
    // A fragment's OAuth token; a user and password with a query token; PostgreSQL's password parameter.
    ["https://app.example/cb#access_token=s3cret&state=af0", "https://app.example/cb#access_token=***&state=af0"],
    ["https://u:pw@h:1/in?token=s3cret#top", "https://u:***@h:1/in?token=***#top"],
    ["postgres://interop@db:5432/interop?sslmode=require&password=s3cret", "postgres://interop@db:5432/interop?sslmode=require&password=***"],
  ];
  for (const [url, shown] of hidden) assert.equal(redactUrl(url), shown, url);
  // Nothing secret: names that only look alike, an empty value, a name without a value, a path.
  for (const url of ["https://h/in?agent=bob&author=ann&keyboard=1&monkey=2&since=3", "https://h/in?token=&x=1", "https://h/in?token", "https://h/token/abc", "http://127.0.0.1:18900"]) {
    assert.equal(redactUrl(url), url);
  }
  // Hiding twice changes nothing.
  assert.equal(redactUrl("https://h/in?token=***"), "https://h/in?token=***");
});

test("redactUrl() hides path segments that hold a key (Slack, Discord, Teams, Mattermost webhooks) and keeps other paths readable", () => {
  const hidden: Array<[string, string]> = [
    ["https://hooks.slack.com/services/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", "https://hooks.slack.com/services/T0A1B2C3D/B0C2D3E4F/***"],
    ["https://discord.com/api/webhooks/1234567890123456789/aBcD-eF_gh1234567890ijklmnOPQRstuvwx", "https://discord.com/api/webhooks/1234567890123456789/***"],
    ["https://acme.webhook.office.com/webhookb2/0d8b3c2e-1f2a@1a2b/IncomingWebhook/3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c/0d8b", "https://acme.webhook.office.com/webhookb2/0d8b3c2e-1f2a@1a2b/IncomingWebhook/***/0d8b"],
    ["https://chat.example.com/hooks/xkmjsfhndqwpabzreytuvc", "https://chat.example.com/hooks/***"],
    ["http://u:pw@h:1/hooks/abcdefgh12345678?token=t#top", "http://u:***@h:1/hooks/***?token=***#top"],
    // n8n's UUID; a base64url token with - and _.
    ["https://n8n.example/webhook/4f8c1e2a-9b3d-4c5e-8f7a-1b2c3d4e5f6a", "https://n8n.example/webhook/***"],
    ["https://maker.example/use/dA1b-C2d_E3f-G4h_I5j-K6l_M7n-O8p_Q9r", "https://maker.example/use/***"],
  ];
  for (const [url, shown] of hidden) assert.equal(redactUrl(url), shown, url);
  assert.equal(redactCredentials("Cannot push to https://hooks.slack.com/services/T0/B0/4fJ8kq2LmN9xZ7wR3tY6pH1s: 404"), "Cannot push to https://hooks.slack.com/services/T0/B0/***: 404");
  // Paths of names, short ids and version numbers; a store's database name is not an HTTP path.
  for (const url of ["http://127.0.0.1:18789/a2a/v1", "https://h/ntfy/research-assistant-2024/json", "https://h/api/v2/items/123456", "postgres://u@db/interop_0123456789abcdef"]) {
    assert.equal(redactUrl(url), url);
  }
});

test("redactCredentials() hides secret query parameters in URLs in free text, sentence punctuation and quotes kept", () => {
  assert.equal(
    redactCredentials('warn: Cannot push to https://hooks.example.com/in?token=s3cret: fetch failed; "https://h/x?key=k1&a=b". http://h:2/?sig=s'),
    'warn: Cannot push to https://hooks.example.com/in?token=***: fetch failed; "https://h/x?key=***&a=b". http://h:2/?sig=***',
  );
  assert.equal(redactCredentials('{"msg":"POST to http://h:1/in?access_token=s3cret answered HTTP 500"}'), '{"msg":"POST to http://h:1/in?access_token=*** answered HTTP 500"}');
});

test("brokerUrls() quotes an invalid URL without its password", () => {
  for (const given of ["http://alice:s3cret/pw@127.0.0.1:18900", "http://alice:s3cret@127.0.0.1:18900/x?y", "alice:s3cret/pw@127.0.0.1:18900,h:1"]) {
    assert.throws(() => brokerUrls("status", given, {}), (error: Error) => {
      assert.match(error.message, /^Invalid --url: "/);
      assert.ok(!error.message.includes("s3cret"), error.message);
      return true;
    });
  }
});

test("splitCredentials() takes the user and password out of a URL as Basic credentials, decoded", () => {
  assert.deepEqual(splitCredentials("http://127.0.0.1:18900"), { url: "http://127.0.0.1:18900", basic: undefined });
  assert.deepEqual(splitCredentials("http://127.0.0.1:18900/a@b"), { url: "http://127.0.0.1:18900/a@b", basic: undefined });
  assert.deepEqual(splitCredentials("http://hermes:hun%40ter2@127.0.0.1:18900/prefix"), {
    url: "http://127.0.0.1:18900/prefix",
    basic: `Basic ${btoa("hermes:hun@ter2")}`,
  });
  assert.deepEqual(splitCredentials("http://hermes:hun@ter2@127.0.0.1:18900"), { url: "http://127.0.0.1:18900", basic: `Basic ${btoa("hermes:hun@ter2")}` });
  // A push target's path stays as given, its trailing slash and query too.
  assert.deepEqual(splitCredentials("http://u:p@127.0.0.1:9900/in/?x=1"), { url: "http://127.0.0.1:9900/in/?x=1", basic: `Basic ${btoa("u:p")}` });
  assert.deepEqual(splitCredentials("http://u:p@127.0.0.1:9900/"), { url: "http://127.0.0.1:9900/", basic: `Basic ${btoa("u:p")}` });
});

test("closestWord() finds the word a typo was meant to be (a swap counts as one edit) and nothing for a word far from all", () => {
  const commands = ["serve", "listen", "send", "ask", "poll", "status", "service"];
  assert.equal(closestWord("sned", commands), "send");
  assert.equal(closestWord("stauts", commands), "status");
  assert.equal(closestWord("lisen", commands), "listen");
  assert.equal(closestWord("sevrice", commands), "service");
  assert.equal(closestWord("frobnicate", commands), undefined);
  // Short words allow one edit only: "ak" is "ask", "xy" is nothing.
  assert.equal(closestWord("ak", commands), "ask");
  assert.equal(closestWord("xy", commands), undefined);
});

test("parseFlags() names the option an unknown long option was meant to be", () => {
  const options = { from: { type: "string", short: "f" }, to: { type: "string", short: "t" } } as const;
  assert.throws(() => parseFlags("send", ["--form", "hermes"], options), {
    message: "Unknown option --form for 'interop send' (did you mean --from?); see 'interop send --help'",
  });
  assert.throws(() => parseFlags("send", ["--bogus"], options), { message: "Unknown option --bogus for 'interop send'; see 'interop send --help'" });
});

test("serve --store-timeout bounds a PostgreSQL store call: 30 s unless given, from 100ms to 1h", () => {
  const storeTimeout = (args: string[]) => readServeSettings(parseFlags("serve", args, SERVE_OPTIONS).values, { HOME: "/home/test" }).storeTimeoutMs;
  assert.equal(storeTimeout([]), 30_000);
  assert.equal(storeTimeout(["--store-timeout", "5s"]), 5000);
  assert.throws(() => storeTimeout(["--store-timeout", "50ms"]), /Invalid --store-timeout: "50ms"; use from 100ms to 1h/);
});

// Red team, session 52: the broker now refuses 0.0.0.0 and [::] as a Host, and an older `serve --host 0.0.0.0` printed
// http://0.0.0.0:PORT, which units and $INTEROP_URL kept: the client names this machine's loopback instead.
test("brokerUrls() names 0.0.0.0 and [::] as this machine's loopback, keeping the rest of the URL", () => {
  assert.deepEqual(brokerUrls("status", "http://0.0.0.0:18900,[::]:5000,http://u:p@0.0.0.0:7000/base/,0.0.0.0:8000", {}), [
    "http://127.0.0.1:18900",
    "http://[::1]:5000",
    "http://u:p@127.0.0.1:7000/base",
    "http://127.0.0.1:8000",
  ]);
  assert.deepEqual(brokerUrls("listen", undefined, { INTEROP_URL: "http://0.0.0.0:18900" }), ["http://127.0.0.1:18900"]);
});

test("reachingHost() names a broker bound to every address by loopback, and an IPv4 address written as IPv6 as itself", () => {
  assert.equal(reachingHost("0.0.0.0"), "127.0.0.1");
  assert.equal(reachingHost("::"), "[::1]");
  assert.equal(reachingHost("::ffff:127.0.0.1"), "127.0.0.1");
  assert.equal(reachingHost("::1"), "[::1]");
  assert.equal(reachingHost("127.0.0.3"), "127.0.0.3");
});
