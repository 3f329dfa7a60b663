/** What a subcommand may touch of the outside world, passed in so the entry point owns the process. */
export interface Io {
  /** On a terminal, what another agent wrote is shown with its control characters written out (`visibleControls`). */
  stdout(text: string): void;
  /**
   * Writes a command's product where losing it would lose a message: resolves once stdout took it, rejects with
   * `output_closed` when its reader is gone (`| head -1` exited).
   */
  writeStdout(text: string): Promise<void>;
  stderr(text: string): void;
  /** Whole standard input as bytes (decoded once, whole: a character may span two chunks); null when stdin is a terminal. */
  readStdin(): Promise<Uint8Array | null>;
  env: Record<string, string | undefined>;
  /** Aborted on SIGINT or SIGTERM: long-running subcommands stop cleanly and return. */
  shutdown: AbortSignal;
}
