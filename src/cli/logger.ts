/** Diagnostics on stderr, one line each: quiet by default, chatty with --verbose, JSON-free and colour-free. */
import type { Io } from "./io.ts";

export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  /** Only with --verbose. */
  debug(message: string): void;
}

export function createLogger(io: Io, command: string, verbose: boolean): Logger {
  const line = (level: string) => (message: string) =>
    io.stderr(`${new Date().toISOString()} interop ${command} ${level}: ${message}\n`);
  return {
    info: line("info"),
    warn: line("warn"),
    error: line("error"),
    debug: verbose ? line("debug") : () => {},
  };
}
