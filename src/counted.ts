/** A count with its noun, singular for one: "1 dead letter", "3 dead letters" (health checks and logs read these). */
export function counted(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}
