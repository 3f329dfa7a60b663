/** Dead letters an operator has seen to: acknowledged, they leave the health check's count and stay the message's outcome. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { test } from "node:test";
import { DATABASE_FILE } from "../../src/store/sqlite_open.ts";
import { rpc } from "../helpers/a2a.ts";
import { publish, startBroker, waitFor } from "../helpers/broker.ts";
import { testStops } from "../helpers/clean_up_all.ts";
import { runCli, tempDir } from "../helpers/cli.ts";
import { brokersOnOneDatabase, startPostgres } from "../helpers/postgres.ts";
import { bearer, brokerWithTokens } from "../helpers/tokens.ts";

async function park(url: string, agent: string, id: number, headers: Record<string, string> = {}): Promise<void> {
  const parked = await fetch(`${url}/dead-letters?agent=${agent}`, { method: "POST", headers, body: JSON.stringify({ id, reason: "HTTP 422" }) });
  assert.equal(parked.status, 200, await parked.text());
}

test("interop agent acknowledge clears status --max-dead-letters for good, across a restart, and the letters stay what a wait for their reply answers", async (t) => {
  const stop = testStops(t);
  const data = tempDir();
  stop(data.cleanup);
  let broker = await startBroker({ dataDir: data.path, args: ["--agents", "hermes,openclaw"] });
  stop(() => broker.cleanup());
  const ids: number[] = [];
  for (const text of ["one", "two", "three"]) ids.push((await (await publish(broker.url, "hermes", "openclaw", { text })).json()).id);
  for (const id of ids) await park(broker.url, "openclaw", id);
  const cli = (args: string[]) => runCli([...args, "--url", broker.url]);
  assert.equal((await cli(["status", "--max-dead-letters", "0"])).code, 5);

  const some = await cli(["agent", "acknowledge", "openclaw", String(ids[0]), String(ids[2]), "--json"]);
  assert.equal(some.code, 0, some.stderr);
  assert.deepEqual(JSON.parse(some.stdout), { agent: "openclaw", acknowledged: [ids[0], ids[2]], dead_letters: 1 });
  const again = await cli(["agent", "acknowledge", "openclaw", String(ids[0])]);
  assert.equal(again.stdout, `acknowledged 0 dead letters of openclaw; 1 left (not dead letters, or acknowledged already: ${ids[0]})\n`);
  const left = JSON.parse((await cli(["agent", "dead-letters", "openclaw", "--json"])).stdout);
  assert.deepEqual(left.map((letter: { id: number }) => letter.id), [ids[1]]);

  // The acknowledgements are stored: a restarted broker counts only the letter left.
  assert.equal((await broker.stop()).code, 0);
  broker = await startBroker({ dataDir: data.path });
  assert.equal(JSON.parse((await cli(["status", "--json"])).stdout).agents.openclaw.dead_letters, 1);
  const all = await cli(["agent", "acknowledge", "openclaw", "--all"]);
  assert.equal(all.stdout, "acknowledged 1 dead letter of openclaw; 0 left\n");
  const healthy = await cli(["status", "--max-dead-letters", "0"]);
  assert.equal(healthy.code, 0, healthy.stdout);
  assert.equal((await cli(["agent", "dead-letters", "openclaw"])).stdout, "openclaw has no dead letters to see to\n");
  // A misspelt name is said to be one, not listed as an agent without letters.
  const misspelt = await cli(["agent", "dead-letters", "opencalw"]);
  assert.deepEqual([misspelt.code, misspelt.stdout], [4, ""]);
  assert.match(misspelt.stderr, /Unknown agent: opencalw has no inbox/);
  // A redelivery to it sent nothing: no advice to run it again for letters sent before the refusal.
  const redelivered = await cli(["agent", "redeliver", "opencalw", "5"]);
  assert.equal(redelivered.code, 4, redelivered.stderr);
  assert.doesNotMatch(redelivered.stderr, /run this again/);
  const kept = JSON.parse((await cli(["agent", "dead-letters", "openclaw", "--acknowledged", "--json"])).stdout);
  assert.deepEqual(kept.map((letter: { id: number; acknowledged_at: string | null }) => [letter.id, typeof letter.acknowledged_at]), [
    [ids[0], "string"],
    [ids[1], "string"],
    [ids[2], "string"],
  ]);
  // Acknowledged is not delivered: no reply can come to the question, and a wait for one still says so at once.
  const wait = await fetch(`${broker.url}/wait?agent=hermes&reply_to=${ids[1]}&timeout=2`);
  assert.equal(wait.status, 410);
  assert.equal((await wait.json()).code, "question_gone");
});

test("acknowledging dead letters needs the agent's token or an admin's, and a bad request is refused, changing nothing", async (t) => {
  const { broker, tokens } = await brokerWithTokens(t);
  const sent = await (await publish(broker.url, "hermes", "openclaw", { text: "x" }, bearer(tokens.hermes))).json();
  await park(broker.url, "openclaw", sent.id, bearer(tokens.openclaw));
  const acknowledge = async (body: string, token: string | undefined, agent = "openclaw") => {
    const answer = await fetch(`${broker.url}/dead-letters/acknowledge?agent=${agent}`, {
      method: "POST",
      headers: token === undefined ? {} : bearer(token),
      body,
    });
    return { status: answer.status, body: await answer.json() };
  };
  assert.equal((await acknowledge('{"all":true}', undefined)).status, 401);
  const stranger = await acknowledge('{"all":true}', tokens.hermes);
  assert.equal(stranger.status, 403, JSON.stringify(stranger.body));
  for (const body of ['{"ids":[]}', '{"ids":["1"]}', '{"ids":[1.5]}', '{"all":false}', '{"all":true,"ids":[1]}', "{}", "[1]"]) {
    const refused = await acknowledge(body, tokens.admin);
    assert.equal(refused.status, 400, `${body}: ${JSON.stringify(refused.body)}`);
    assert.match(refused.body.error, /^Invalid/);
  }
  assert.equal((await acknowledge('{"all":true}', tokens.admin, "nobody")).status, 404);
  const listed = await fetch(`${broker.url}/dead-letters?agent=nobody`, { headers: bearer(tokens.admin) });
  assert.deepEqual([listed.status, (await listed.json()).code], [404, "unknown_agent"]);
  const status = async () => (await (await fetch(`${broker.url}/status`, { headers: bearer(tokens.admin) })).json()).agents.openclaw.dead_letters;
  assert.equal(await status(), 1, "nothing refused changed the count");
  assert.deepEqual(await acknowledge(`{"ids":[${sent.id}]}`, tokens.openclaw), { status: 200, body: { acknowledged: [sent.id], dead_letters: 0 } });
  assert.equal(await status(), 0);
  const cli = await runCli(["agent", "acknowledge", "openclaw", "x1", "--url", broker.url]);
  assert.equal(cli.code, 2);
  assert.match(cli.stderr, /^error: Invalid ID: "x1"; use a whole number/);
  // A flag of another action is a mistake said, not ignored.
  for (const [args, flag] of [[["list", "--acknowledged"], "acknowledged"], [["dead-letters", "openclaw", "--all"], "all"]] as const) {
    const misplaced = await runCli(["agent", ...args, "--url", broker.url]);
    assert.equal(misplaced.code, 2, misplaced.stderr);
    assert.match(misplaced.stderr, new RegExp(`^error: --${flag} is for `));
  }
});

test("on brokers sharing PostgreSQL, each counts the dead letters parked and acknowledged through the others, so status --max-dead-letters agrees", async (t) => {
  const server = await startPostgres(t);
  if (server === undefined) return;
  const { brokers: [a, b] } = await brokersOnOneDatabase(t, server, 2, ["--agents", "hermes,openclaw"]);
  const letters = async (url: string) => (await (await fetch(`${url}/status`)).json()).agents.openclaw.dead_letters;
  const ids: number[] = [];
  for (const text of ["refused", "refused too"]) ids.push((await (await publish(a.url, "hermes", "openclaw", { text })).json()).id);
  for (const id of ids) await park(a.url, "openclaw", id);
  // At once, before b's count has seen a's parks: what is left is the database's (b said "0 left").
  const one = await runCli(["agent", "acknowledge", "openclaw", String(ids[0]), "--url", b.url]);
  assert.equal(one.stdout, "acknowledged 1 dead letter of openclaw; 1 left\n");
  // Before: b counted only its own parks (0), and a counted this one until it restarted, whoever acknowledged it.
  await waitFor(async () => (await letters(b.url)) === 1, 10_000, "b to count the letter parked through a");
  await waitFor(async () => (await letters(a.url)) === 1, 10_000, "a to count the letter acknowledged through b");
  const unhealthy = await runCli(["status", "--url", `${a.url},${b.url}`, "--max-dead-letters", "0"]);
  assert.equal(unhealthy.code, 5, unhealthy.stdout);
  const acknowledged = await runCli(["agent", "acknowledge", "openclaw", "--all", "--url", b.url]);
  assert.equal(acknowledged.stdout, "acknowledged 1 dead letter of openclaw; 0 left\n");
  await waitFor(async () => (await letters(a.url)) === 0, 10_000, "a to count the letter acknowledged through b");
  const healthy = await runCli(["status", "--url", `${a.url},${b.url}`, "--max-dead-letters", "0"]);
  assert.equal(healthy.code, 0, healthy.stdout);
});

test("interop agent redeliver sends a dead letter's message again once, as a new message from its sender (a reply still a reply), and acknowledges it", async (t) => {
  const broker = await startBroker({ args: ["--agents", "hermes,openclaw"] });
  t.after(() => broker.cleanup());
  const cli = (args: string[]) => runCli([...args, "--url", broker.url]);
  const question = (await (await publish(broker.url, "openclaw", "hermes", { text: "ready?" })).json()).id;
  const first = (await (await publish(broker.url, "hermes", "openclaw", { text: "first" })).json()).id;
  const reply = await fetch(`${broker.url}/broadcast?from=hermes&reply_to=${question}`, { method: "POST", body: '{"text":"yes"}' });
  const answer = (await reply.json()).id;
  // openclaw's receiver took both (as listen does) and refused them.
  assert.deepEqual((await (await fetch(`${broker.url}/poll?agent=openclaw`)).json()).map((m: { text: string }) => m.text), ["first", "yes"]);
  for (const id of [first, answer]) await park(broker.url, "openclaw", id);

  const once = await cli(["agent", "redeliver", "openclaw", String(answer), String(question), "--json"]);
  assert.equal(once.code, 0, once.stderr);
  const sent = JSON.parse(once.stdout);
  assert.deepEqual({ ...sent, redelivered: sent.redelivered.map((r: { id: number }) => r.id) }, {
    agent: "openclaw",
    redelivered: [answer],
    unknown: [question], // hermes's inbox's message, not a letter of openclaw
    removed: [],
    refused: [],
    dead_letters: 1,
  });
  const copy = sent.redelivered[0].as;
  // Run again (its answer lost, say): the same message, not another.
  const again = JSON.parse((await cli(["agent", "redeliver", "openclaw", String(answer), "--json"])).stdout);
  assert.deepEqual(again.redelivered, [{ id: answer, as: copy }]);
  const all = await cli(["agent", "redeliver", "openclaw", "--all"]);
  assert.match(all.stdout, new RegExp(`^redelivered 1 dead letter to openclaw \\(${first} as \\d+\\); 0 left\n$`));
  const inbox = await (await fetch(`${broker.url}/poll?agent=openclaw`)).json();
  assert.deepEqual(inbox.map((m: { text: string; interop: { from: string; reply_to?: number } }) => [m.text, m.interop.from, m.interop.reply_to]), [
    ["yes", "hermes", question],
    ["first", "hermes", undefined],
  ]);
  assert.equal(inbox[0].interop.id, copy);
  // The letters are acknowledged, and kept.
  const letters = JSON.parse((await cli(["agent", "dead-letters", "openclaw", "--acknowledged", "--json"])).stdout);
  assert.deepEqual(letters.map((l: { id: number; acknowledged_at: string | null }) => [l.id, l.acknowledged_at !== null]), [[first, true], [answer, true]]);
  // A publish may not take a redelivery's key: it would stand for that redelivery.
  const keyed = await fetch(`${broker.url}/broadcast?from=hermes&to=openclaw`, { method: "POST", headers: { "idempotency-key": `redelivery:${first}` }, body: "{}" });
  assert.equal(keyed.status, 400);
  const bad = await fetch(`${broker.url}/dead-letters/redeliver?agent=openclaw`, { method: "POST", body: '{"all":true}' });
  assert.equal(bad.status, 400, "the HTTP redelivery names its ids");

  // A reply whose question went with its sender's removal cannot be a reply again: refused, and the others still go.
  const asked = (await (await publish(broker.url, "openclaw", "hermes", { text: "still there?" })).json()).id;
  const late = await fetch(`${broker.url}/broadcast?from=hermes&reply_to=${asked}`, { method: "POST", body: '{"text":"late"}' });
  const lateId = (await late.json()).id;
  const plain = (await (await publish(broker.url, "hermes", "openclaw", { text: "plain" })).json()).id;
  await fetch(`${broker.url}/poll?agent=openclaw`);
  for (const id of [lateId, plain]) await park(broker.url, "openclaw", id);
  assert.equal((await cli(["agent", "remove", "hermes", "--force"])).code, 0);
  const mixed = await cli(["agent", "redeliver", "openclaw", "--all"]);
  assert.equal(mixed.code, 0, mixed.stderr);
  assert.match(mixed.stdout, new RegExp(`^redelivered 1 dead letter to openclaw \\(${plain} as \\d+\\); ${lateId} refused: [^\n]+; 1 left\n$`));
});

test("interop agent dead-letters says when big messages left older letters out of the answer, and redeliver --all reaches them too", async (t) => {
  const broker = await startBroker({ args: ["--agents", "hermes,openclaw"] });
  t.after(() => broker.cleanup());
  const cli = (args: string[]) => runCli([...args, "--url", broker.url]);
  // 18 messages of ~1 MB: more than the 16 MiB one answer holds.
  const big = "x".repeat(1_000_000);
  for (let n = 0; n < 18; n++) {
    const { id } = await (await publish(broker.url, "hermes", "openclaw", { text: `${n} ${big}` })).json();
    await park(broker.url, "openclaw", id);
  }
  // A reason is the receiver's text: a line break in it must not pass for a letter of its own.
  const forged = (await (await publish(broker.url, "hermes", "openclaw", { text: "small" })).json()).id;
  const parked = await fetch(`${broker.url}/dead-letters?agent=openclaw`, {
    method: "POST",
    body: JSON.stringify({ id: forged, reason: "exit 1\n999  parked 1 s ago, from admin" }),
  });
  assert.equal(parked.status, 200);
  const listed = await cli(["agent", "dead-letters", "openclaw"]);
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stderr, /^note: only the newest \d+ fit in the broker's answer \(their messages are big\); older ones were left out/);
  assert.match(listed.stdout, new RegExp(`^${forged}  parked \\d+ s ago, from hermes\n  reason: exit 1\n    999  parked 1 s ago, from admin\n`, "m"));
  assert.doesNotMatch(listed.stdout, /^999 /m);
  const all = await cli(["agent", "redeliver", "openclaw", "--all", "--json"]);
  assert.equal(all.code, 0, all.stderr);
  const sent = JSON.parse(all.stdout);
  assert.equal(sent.redelivered.length, 19, "every letter, those the first answer left out too");
  assert.equal(sent.dead_letters, 0);
});

test("a dead letter whose message retention removed is named removed by redeliver, nothing sent, and left to acknowledge", async (t) => {
  // A park takes what is still in the inbox, so the message is delivered first and removed a period after; a
  // --pending-ttl for another agent only makes the retention sweep run every 0.5 s (else once a minute).
  const broker = await startBroker({ args: ["--agents", "hermes,openclaw,cron", "--retention", "1s", "--pending-ttl", "0,cron=1s"] });
  t.after(() => broker.cleanup());
  const { id } = await (await publish(broker.url, "hermes", "openclaw", { text: "gone soon" })).json();
  await fetch(`${broker.url}/poll?agent=openclaw`);
  await park(broker.url, "openclaw", id);
  await waitFor(
    async () => (await (await fetch(`${broker.url}/dead-letters?agent=openclaw`)).json())[0].message === null,
    20_000,
    "retention to remove the message",
  );
  const answer = await (await fetch(`${broker.url}/dead-letters/redeliver?agent=openclaw`, { method: "POST", body: `{"ids":[${id}]}` })).json();
  assert.deepEqual(answer, { redelivered: [], unknown: [], removed: [id], refused: [], dead_letters: 1 });
  assert.deepEqual(await (await fetch(`${broker.url}/poll?agent=openclaw`)).json(), []);
});

test("a message parked by hand while still in the inbox leaves it, so a redelivery reaches its agent once", async (t) => {
  const broker = await startBroker({ args: ["--agents", "hermes,openclaw"] });
  t.after(() => broker.cleanup());
  const ids: number[] = [];
  for (const text of ["refused by hand", "next"]) ids.push((await (await publish(broker.url, "hermes", "openclaw", { text })).json()).id);
  await park(broker.url, "openclaw", ids[0]);
  // Parked again (its client's answer lost): still one letter, and nothing more taken.
  await park(broker.url, "openclaw", ids[0]);
  const status = async () => (await (await fetch(`${broker.url}/status`)).json()).agents.openclaw;
  assert.deepEqual([(await status()).pending, (await status()).dead_letters], [1, 1]);
  const redelivered = await fetch(`${broker.url}/dead-letters/redeliver?agent=openclaw`, { method: "POST", body: JSON.stringify({ ids: [ids[0]] }) });
  assert.equal(redelivered.status, 200, await redelivered.text());
  // Before: the original stayed in the inbox beside its copy, and openclaw got "refused by hand" twice.
  const inbox = await (await fetch(`${broker.url}/poll?agent=openclaw`)).json();
  assert.deepEqual(inbox.map((m: { text: string }) => m.text), ["next", "refused by hand"]);
  assert.deepEqual([(await status()).pending, (await status()).dead_letters], [0, 0]);
});

test("a message its sender withdrew (A2A CancelTask) cannot be parked, so no letter shows its text and no redelivery sends it", async (t) => {
  const broker = await startBroker({ args: ["--agents", "hermes,bob"] });
  t.after(() => broker.cleanup());
  const task = await rpc(broker.url, "bob", undefined, "SendMessage", {
    message: { messageId: "m1", role: "ROLE_USER", parts: [{ text: "withdrawn secret" }] },
    configuration: { returnImmediately: true },
  });
  const id = (await (await fetch(`${broker.url}/status`)).json()).last_id;
  assert.equal((await rpc(broker.url, "bob", undefined, "CancelTask", { id: (task.body.result!.task as { id: string }).id })).body.error, undefined);
  // Before: parked with bob's own token, its letter listed the text, and a redelivery put it in bob's inbox.
  const parked = await fetch(`${broker.url}/dead-letters?agent=bob`, { method: "POST", body: JSON.stringify({ id, reason: "refused" }) });
  assert.equal(parked.status, 404);
  assert.equal((await parked.json()).code, "unknown_message");
  assert.deepEqual(await (await fetch(`${broker.url}/dead-letters?agent=bob&acknowledged=1`)).json(), []);
  const redelivered = await fetch(`${broker.url}/dead-letters/redeliver?agent=bob`, { method: "POST", body: JSON.stringify({ ids: [id] }) });
  assert.deepEqual((await redelivered.json()).unknown, [id]);
  assert.deepEqual(await (await fetch(`${broker.url}/poll?agent=bob`)).json(), []);
});

test("a letter stored for a message its sender withdrew (a park that raced the withdrawal, or an older version's) lists no text and sends nothing", async (t) => {
  const stop = testStops(t);
  const data = tempDir();
  stop(data.cleanup);
  let broker = await startBroker({ dataDir: data.path, args: ["--agents", "hermes,bob"] });
  stop(() => broker.cleanup());
  const task = await rpc(broker.url, "bob", undefined, "SendMessage", {
    message: { messageId: "m1", role: "ROLE_USER", parts: [{ text: "withdrawn secret" }] },
    configuration: { returnImmediately: true },
  });
  const id = (await (await fetch(`${broker.url}/status`)).json()).last_id;
  assert.equal((await rpc(broker.url, "bob", undefined, "CancelTask", { id: (task.body.result!.task as { id: string }).id })).body.error, undefined);
  assert.equal((await broker.stop()).code, 0);
  // The letter the park's check let through: stored after the withdrawal committed.
  const file = new DatabaseSync(join(data.path, DATABASE_FILE));
  file.prepare("INSERT INTO dead_letters (agent, message_id, reason, parked_at) VALUES ('bob', ?, 'refused', 0)").run(id);
  file.close();
  broker = await startBroker({ dataDir: data.path });
  // Before: the letter listed "withdrawn secret", and a redelivery put it in bob's inbox.
  const [letter] = await (await fetch(`${broker.url}/dead-letters?agent=bob`)).json();
  assert.deepEqual([letter.id, letter.message], [id, null]);
  const redelivered = await fetch(`${broker.url}/dead-letters/redeliver?agent=bob`, { method: "POST", body: JSON.stringify({ ids: [id] }) });
  assert.deepEqual((await redelivered.json()).removed, [id]);
  assert.deepEqual(await (await fetch(`${broker.url}/poll?agent=bob`)).json(), []);
});

/**
 * Parks message 2 of three shown under a reader's lease, through `parkUrl`: refused (409), parking nothing, and the
 * reader's take gets all three.
 */
async function parkUnderLease(readUrl: string, parkUrl: string): Promise<void> {
  const ids: number[] = [];
  for (const text of ["one", "two", "three"]) ids.push((await (await publish(readUrl, "hermes", "openclaw", { text })).json()).id);
  const peek = await fetch(`${readUrl}/poll?agent=openclaw&peek=1&lease=30`);
  const lease = peek.headers.get("interop-lease")!;
  assert.deepEqual((await peek.json()).map((message: { interop: { id: number } }) => message.interop.id), ids);
  const parked = await fetch(`${parkUrl}/dead-letters?agent=openclaw`, { method: "POST", body: JSON.stringify({ id: ids[1], reason: "refused" }) });
  // Before: 200 on SQLite, the take below then passing over it unsaid; 409 on PostgreSQL with the letter stored.
  const refusal = await parked.text();
  assert.equal(parked.status, 409, refusal);
  assert.equal(JSON.parse(refusal).code, "inbox_leased");
  const take = await fetch(`${readUrl}/poll?agent=openclaw&up_to=${ids[2]}&lease_id=${lease}`);
  assert.deepEqual((await take.json()).map((message: { interop: { id: number } }) => message.interop.id), ids);
  const letters = await (await fetch(`${parkUrl}/dead-letters?agent=openclaw&acknowledged=1`)).json();
  assert.ok(!letters.some((letter: { id: number }) => letter.id === ids[1]), JSON.stringify(letters));
  // The lease ended with the take: a park now is the receiver's, of a message delivered.
  await park(parkUrl, "openclaw", ids[1]);
}

test("a park of a message another reader has shown under its lease is refused, parking nothing: a redelivery cannot hand it out twice", async (t) => {
  const broker = await startBroker({ args: ["--agents", "hermes,openclaw"] });
  t.after(() => broker.cleanup());
  await parkUnderLease(broker.url, broker.url);
});

test("on brokers sharing PostgreSQL, a park under another reader's lease is refused before its letter is stored, on the lease's broker or another", async (t) => {
  const server = await startPostgres(t);
  if (server === undefined) return;
  const { brokers: [a, b] } = await brokersOnOneDatabase(t, server, 2, ["--agents", "hermes,openclaw"]);
  await parkUnderLease(a.url, a.url);
  await parkUnderLease(a.url, b.url);
});

test("a redelivery counts against the rate of the agent it redelivers to, not its sender's", async (t) => {
  const broker = await startBroker({ args: ["--agents", "hermes,openclaw", "--rate-limit", "1"] });
  t.after(() => broker.cleanup());
  const ids: number[] = [];
  for (const text of ["one", "two"]) ids.push((await (await publish(broker.url, "hermes", "openclaw", { text })).json()).id);
  for (const id of ids) await park(broker.url, "openclaw", id);
  // hermes's burst (2) back, openclaw's untouched.
  await new Promise((resolve) => setTimeout(resolve, 2200));
  const redelivered = await fetch(`${broker.url}/dead-letters/redeliver?agent=openclaw`, { method: "POST", body: JSON.stringify({ ids }) });
  assert.equal(redelivered.status, 200, await redelivered.text());
  // Before: the copies were hermes's to pay, and a recipient redelivering in a loop kept hermes at 429.
  assert.equal((await publish(broker.url, "hermes", "openclaw", { text: "three" })).status, 200);
  const again = await fetch(`${broker.url}/dead-letters/redeliver?agent=openclaw`, { method: "POST", body: JSON.stringify({ ids }) });
  assert.equal(again.status, 200, "a run again finds the copies: nothing to pay");
});
