/** Counts the JSON.parse calls `work` makes: a test that some text is refused before it is parsed at all. */
export async function countJsonParses<T>(work: () => T | Promise<T>): Promise<{ result: T; parses: number }> {
  const parse = JSON.parse;
  let parses = 0;
  JSON.parse = (...args: Parameters<typeof JSON.parse>) => {
    parses++;
    return parse(...args);
  };
  try {
    return { result: await work(), parses };
  } finally {
    JSON.parse = parse;
  }
}
