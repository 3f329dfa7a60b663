/** Whether a process a file names (a broker's owner file, a lock's holder) still runs on this host. */
import process from "node:process";

/** Signal 0 checks without sending anything; EPERM means it runs, as another user. */
export function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
