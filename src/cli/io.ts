/** What a subcommand may touch of the outside world, passed in so the entry point owns the process. */
export interface Io {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Whole standard input, for `send` with no text argument; null when stdin is a terminal. */
  readStdin(): Promise<string | null>;
  env: Record<string, string | undefined>;
  /** Aborted on SIGINT or SIGTERM: long-running subcommands stop cleanly and return. */
  shutdown: AbortSignal;
}
