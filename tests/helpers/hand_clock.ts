/** A clock a test moves by hand (a broker's `now`): what expires is then what the test says, however loaded the machine. */
export function handClock(): { now: () => number; advance: (ms: number) => void } {
  let time = Date.now();
  return { now: () => time, advance: (ms: number) => void (time += ms) };
}
