/**
 * Diagnostics on stderr, one line each: quiet by default, chatty with --verbose; plain text for people, or one
 * JSON object per line (`--log-format json`) for log shippers. Callers never pass tokens or message bodies.
 */
import type { Io } from "./io.ts";

export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  /** Only with --verbose. */
  debug(message: string): void;
}

export type LogFormat = "text" | "json";

export function createLogger(io: Io, command: string, verbose: boolean, format: LogFormat = "text"): Logger {
  const line = (level: string) => (message: string) => {
    const time = new Date().toISOString();
    io.stderr(
      format === "json"
        ? JSON.stringify({ time, level, command, message }) + "\n"
        : `${time} interop ${command} ${level}: ${message}\n`,
    );
  };
  return {
    info: line("info"),
    warn: line("warn"),
    error: line("error"),
    debug: verbose ? line("debug") : () => {},
  };
}
