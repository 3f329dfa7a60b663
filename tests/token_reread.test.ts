/** A token made a moment ago, not yet read by the broker, is read before it is called unknown. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Authenticator } from "../src/auth/authenticator.ts";
import { mintToken, type TokenList, type TokenRecord } from "../src/auth/token_list.ts";
import type { AgentName } from "../src/message.ts";
import { fromWebRequest } from "./helpers/web_request.ts";

const hermes = "hermes" as AgentName;

/** A request to the broker with `token`. */
function withToken(token: string) {
  return fromWebRequest(new Request("http://127.0.0.1/poll?agent=hermes", { headers: { authorization: `Bearer ${token}` } }));
}

/** A token list in memory whose changes the broker hears of only by reading it (no notification comes). */
function silentList(): { list: TokenList; add(record: TokenRecord): void } {
  const records: TokenRecord[] = [];
  let version = 0;
  const list = {
    where: "memory",
    list: () => Promise.resolve([...records]),
    version: () => Promise.resolve(version),
    watch: () => Promise.resolve(),
    close: () => Promise.resolve(),
  } as unknown as TokenList;
  return { list, add: (record) => (records.push(record), version++) };
}

test("a token made since the broker last read its tokens is read before the request is refused as unknown", async () => {
  const { list, add } = silentList();
  add(mintToken(hermes, false).record);
  const auth = await Authenticator.open(list);
  // Within the second the list counts as current: before, this token was 401 until the next read.
  const { record, token } = mintToken(hermes, false);
  add(record);
  const caller = await auth.identify(withToken(token));
  assert.deepEqual(caller, { agent: hermes, tokenHash: record.hash, admin: false });
  await assert.rejects(auth.identify(withToken("itk_unknown")), { code: "unauthorized" });
});
