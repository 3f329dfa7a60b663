/** Where `listen` writes each message: stdout, a file, a command's stdin or a push receiver (a FIFO: listen_fifo_sink.ts). */
import { spawn } from "node:child_process";
import { appendFileSync, closeSync, fstatSync, openSync, readSync, statSync, truncateSync } from "node:fs";
import { dirname } from "node:path";
import { InteropError } from "../errors.ts";
import { type AgentName, type Envelope, fromWire, messageKey } from "../message.ts";
import type { StreamedMessage } from "../client/follow.ts";
import { formatBytes, type PushTarget } from "../client/push_targets.ts";
import { NO_REDIRECTS, redirectProblem } from "../client/redirects.ts";
import { authorizationHeader, splitCredentials } from "../client/url_credentials.ts";
import { describeCause } from "../client/fetch_failures.ts";
import { answerText } from "../client/answer_text.ts";
import type { Io } from "./io.ts";
import { redactCredentials, redactUrl } from "../url_redaction.ts";
import { retryAfterSeconds } from "../client/retry_after.ts";

/** Writes one message; resolves only once it is written (the cursor advances after that). */
export type MessageSink = (message: StreamedMessage) => Promise<void>;

/** A closed stdout ends `listen` (output_closed), with its cursor before the message that could not be written. */
export function stdoutSink(io: Io): MessageSink {
  return (message) => io.writeStdout(message.data + "\n");
}

/** Appends one JSON line per message; a file it cannot append to is refused at once, not retried forever. */
export function fileSink(path: string): MessageSink {
  try {
    closeSync(openSync(path, "a"));
  } catch (cause) {
    // Opening for append creates the file, not its folder: ENOENT can only mean the folder is missing.
    const why = (cause as NodeJS.ErrnoException).code === "ENOENT"
      ? `its folder ${dirname(path)} does not exist; create it first (mkdir -p ${dirname(path)})`
      : (cause as Error).message;
    throw new InteropError("usage", `Cannot append to --out ${path}: ${why}`, { cause });
  }
  return (message) => {
    const before = sizeOf(path);
    try {
      appendFileSync(path, message.data + "\n");
    } catch (error) {
      // A full disk (ENOSPC) or a file-size limit (EFBIG) can take the first part of the line: cut it off, so the retry
      // writes the whole line where this one began, rather than after a broken one no reader of the file can parse.
      if (before !== undefined) cutBackTo(path, before);
      throw error;
    }
    return Promise.resolve();
  };
}

/** The file's size, or undefined when it is gone (appending creates it again). */
function sizeOf(path: string): number | undefined {
  try {
    return statSync(path).size;
  } catch {
    return undefined;
  }
}

function cutBackTo(path: string, size: number): void {
  try {
    truncateSync(path, size);
  } catch {
    // The append's own error is what listen reports and retries on.
  }
}

/**
 * The last whole line in an --out file that is a message to `agent`, as its id and key (`messageKey`: the line may
 * have come from another store's broker), or undefined if there is none. Other agents' lines are passed over: their
 * listeners may append to the same file, and a restart after one of theirs resumed after its id (skipping this
 * agent's messages below it, or reading them again above).
 */
export function lastMessageInFile(path: string, agent: AgentName): { id: number; key: string } | undefined {
  let tail: Buffer;
  try {
    tail = readTail(path, TAIL_BYTES);
  } catch {
    return undefined;
  }
  const lines = tail.toString("utf8").split("\n");
  // The final element is "" after a whole line, or a line cut short by a crash: skip it either way.
  for (let index = lines.length - 2; index >= 0; index--) {
    let message: Envelope;
    try {
      message = fromWire(JSON.parse(lines[index]));
    } catch {
      // Not one of ours (hand-edited, or cut): look further back.
      continue;
    }
    if (message.to === agent) return { id: message.id, key: messageKey(message) };
  }
  return undefined;
}

/** Enough of the file's end to hold its last message (the broker caps bodies far below this by default). */
const TAIL_BYTES = 4 * 1024 * 1024;

function readTail(path: string, bytes: number): Buffer {
  const fd = openSync(path, "r");
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(size, bytes);
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, size - length);
    return buffer;
  } finally {
    closeSync(fd);
  }
}

/** How much of a failing command's stderr a dead letter keeps. */
const STDERR_TAIL_BYTES = 1000;

/** How long after the command's exit its stderr may take to end, what it wrote last read into the tail. */
const STDERR_DRAIN_MS = 100;

/**
 * Runs `command` in a shell once per message, with the message on stdin; a non-zero exit is a failed delivery. A
 * failing run is retried (by the caller) up to `attempts` runs; the last failure is final (`rejected`), so the
 * message becomes a dead letter and the stream moves on instead of blocking for good.
 */
export function execSink(command: string, io: Io, attempts: number): MessageSink {
  let failures = { id: -1, count: 0 };
  return (message) =>
    new Promise((resolve, reject) => {
      const child = spawn("sh", ["-c", command], {
        stdio: ["pipe", "inherit", "pipe"],
        env: { ...io.env, INTEROP_MESSAGE_ID: String(message.id) },
      });
      let stderrTail = "";
      child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
        io.stderr(chunk);
        stderrTail = (stderrTail + chunk).slice(-STDERR_TAIL_BYTES);
      });
      child.on("error", (cause) => reject(new InteropError("internal", `Cannot run --exec command: ${cause.message}`, { cause })));
      child.on("exit", (code, signal) => {
        const settle = () => {
          clearTimeout(drained);
          child.off("close", settle);
          if (code === 0) return resolve();
          if (failures.id !== message.id) failures = { id: message.id, count: 0 };
          const count = ++failures.count;
          const outcome = `--exec command failed for message ${message.id} (${signal ?? `exit ${code}`}, run ${count} of ${attempts})`;
          const detail = stderrTail.trim() === "" ? "" : `; its stderr ended with: ${stderrTail.trim()}`;
          reject(new InteropError(count >= attempts ? "rejected" : "internal", outcome + detail));
        };
        // Its stderr closes as it exits, unless a job it left in the background holds it: that job is not waited
        // for (it held the next message, the state's save and a SIGTERM for as long as it ran; red team, session 52).
        const drained = setTimeout(settle, STDERR_DRAIN_MS);
        child.on("close", settle);
      });
      child.stdin.on("error", () => {
        // The command may exit without reading stdin; its exit code decides.
      });
      child.stdin.end(message.data + "\n");
    });
}

/**
 * Statuses that say the receiver is not set up for this listen (a wrong or changed token, a wrong path), nothing
 * about the message: retried until the setup is fixed, never turned into dead letters (OpenClaw answered 401 to
 * every push after its hooks token changed).
 */
const SETUP_STATUSES = [401, 403, 404];

/**
 * POSTs each message to an agent's inbound path. 2xx is delivered; no answer, 408, 429, 5xx, a setup problem (a
 * 3xx included: a redirect is never followed) and the target's own passing refusals are retried (after
 * `Retry-After` when the receiver sends one); any other 4xx is final (`rejected`): retrying cannot make the
 * receiver accept it.
 */
export function pushSink(target: PushTarget, timeoutMs: number): MessageSink {
  return async (message) => {
    const request = target.request(message);
    // A user and password in the URL go as Basic, unless the target sends its own Authorization (a token).
    const { url, basic } = splitCredentials(request.url);
    let response: Response;
    try {
      response = await fetch(url, {
        method: "POST",
        headers: { ...authorizationHeader(basic, undefined), ...request.headers },
        body: request.body,
        signal: AbortSignal.timeout(timeoutMs),
        ...NO_REDIRECTS,
      });
    } catch (cause) {
      // `fetch failed` alone (Node's message) told a receiver that is down from one that reset the connection.
      const reason = (cause as Error)?.name === "TimeoutError" ? `no answer within ${timeoutMs} ms` : describeCause(cause);
      // Node's refusal of a URL with a password quotes it whole.
      throw new InteropError("unreachable", redactCredentials(`Cannot push to ${request.url}: ${reason}`), { cause });
    }
    if (response.ok) {
      // Taken: what the receiver says after its status is not waited for (an endless body held the message).
      response.body?.cancel().catch(() => {});
      return;
    }
    const answer = await answerText(response);
    const redirect = redirectProblem(response, request.url);
    if (redirect !== undefined) {
      throw new InteropError("unreachable", `${redirect} (listen retries until the receiver takes it)`);
    }
    // A refusal's detail becomes a dead letter's reason, kept by the broker: the URL goes with its secrets hidden.
    let detail = `${redactUrl(request.url)} answered HTTP ${response.status}${answer ? `: ${answer.slice(0, 200)}` : ""}`;
    const { status } = response;
    const retryAfter = retryAfterSeconds(response.headers.get("retry-after"));
    if (SETUP_STATUSES.includes(status)) {
      throw new InteropError("unreachable", `${detail}; check the push URL and token (listen retries until the receiver takes it)`, {
        retryAfter,
      });
    }
    if (status === 408 || status === 429 || status >= 500 || target.retryStatuses?.includes(status)) {
      throw new InteropError("unreachable", detail, { retryAfter });
    }
    if (status === 413) {
      detail += `; the request body was ${formatBytes(new TextEncoder().encode(request.body).byteLength)} bytes, more than the receiver takes`;
    }
    throw new InteropError("rejected", detail, { status });
  };
}
