/**
 * Diagnostics on stderr, one line each: quiet by default, chatty with --verbose; plain text for people, or one
 * JSON object per line (`--log-format json`) for log shippers. Callers never pass tokens or message bodies.
 */
import type { Io } from "./io.ts";
import { oneLine } from "./terminal_text.ts";

/** An event's details, which a JSON line carries as fields beside its message (text lines have them in words). */
export type LogFields = Record<string, string | number | boolean | null>;

export type LogMethod = (message: string, fields?: LogFields) => void;

export interface Logger {
  info: LogMethod;
  warn: LogMethod;
  error: LogMethod;
  /** Only with --verbose. */
  debug: LogMethod;
}

export type LogFormat = "text" | "json";

export function createLogger(io: Io, command: string, verbose: boolean, format: LogFormat = "text"): Logger {
  const line = (level: string): LogMethod => (message, fields = {}) => {
    const time = new Date().toISOString();
    io.stderr(
      format === "json"
        // The event's fields after the fixed ones, which they cannot replace: a shipper relies on those.
        ? JSON.stringify({ ...fields, time, level, msg: message, command }, ["time", "level", "msg", "command", ...Object.keys(fields)]) + "\n"
        // One line whatever the message quotes (a push receiver's answer, an --exec command's stderr): a line break
        // in it would put a line of the quoted text's choosing in the log (red team 62).
        : `${time} interop ${command} ${level}: ${oneLine(message)}\n`,
    );
  };
  return {
    info: line("info"),
    warn: line("warn"),
    error: line("error"),
    debug: verbose ? line("debug") : () => {},
  };
}
