/** Tokens for tests, made and revoked with the real CLI, as an operator does. */
import assert from "node:assert/strict";
import { runCli } from "./cli.ts";

/** `--data-dir DIR`, or `--database-url URL` for a PostgreSQL URL: where `interop token` works. */
const place = (where: string) => /^postgres(ql)?:\/\//.test(where) ? ["--database-url", where] : ["--data-dir", where];

/** Creates a token for `agent` in a data dir or a database (an operator's with `admin`) and returns it. */
export async function createToken(where: string, agent: string, options: { admin?: boolean } = {}): Promise<string> {
  const result = await runCli(["token", "create", "--agent", agent, ...(options.admin ? ["--admin"] : []), ...place(where)]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^itk_[A-Za-z0-9_-]{43}\n$/);
  return result.stdout.trim();
}

/** Revokes every token of `agent` with `interop token revoke`; resolves with what it printed. */
export async function revokeTokens(where: string, agent: string): Promise<{ stdout: string; stderr: string }> {
  const result = await runCli(["token", "revoke", "--agent", agent, ...place(where)]);
  assert.equal(result.code, 0, result.stderr);
  return result;
}

export const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });
