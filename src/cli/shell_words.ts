/** Words written for a shell to read back as they are (sh, bash, zsh and fish alike). */

/** `text` in single quotes, inside which none of those shells expands anything. */
export function singleQuoted(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** `args` as one command line: a word with anything but plain characters single-quoted. */
export function shellWords(args: string[]): string {
  return args.map((arg) => /^[\w@%+=:,./-]+$/.test(arg) ? arg : singleQuoted(arg)).join(" ");
}
