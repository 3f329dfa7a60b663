/** Another agent's text as a terminal shows it. */

/**
 * What a terminal must not be handed as it is. Written out: the C0 and C1 control characters and DEL, but for the
 * newline and the tab (an escape sequence would drive the operator's terminal: set its title, write its clipboard
 * with OSC 52, hide or overwrite what is shown; red team, session 52), the line and paragraph separators, and every
 * default-ignorable character, which a terminal shows as nothing while an agent reads it: the bidirectional
 * embeddings, overrides and isolates, which reorder what follows them on screen ("Trojan Source", CVE-2021-42574:
 * `rm -rf ~` shown as something else); the tag characters (red team 61: "hello" on screen carried "IGNORE PREVIOUS"
 * to the agent); zero-width spaces, joiners and fillers, variation selectors (red team 62: one byte each under
 * "Sure … ok"). Kept, in the one place each has a use (group 1): the flags of England, Scotland and Wales (tag
 * letters after a black flag); VS15/16 after an emoji or a keycap's digit, VS1-14 after a math symbol; ZWJ and ZWNJ
 * between letters, marks or pictographs (emoji sequences, Indic conjuncts, Persian); a mark (LRM, RLM, ALM) that
 * follows no other mark (right-to-left text uses them; they reorder nothing by themselves). None of those can follow
 * another, so what they can carry is a bit or two per visible character.
 */
const NOT_AS_IS = new RegExp(
  "(" +
    [
      String.raw`\u{1f3f4}\u{e0067}\u{e0062}(?:\u{e0065}\u{e006e}\u{e0067}|\u{e0073}\u{e0063}\u{e0074}|\u{e0077}\u{e006c}\u{e0073})\u{e007f}`,
      String.raw`(?<=\p{Emoji})[\ufe0e\ufe0f]`,
      String.raw`(?<=\p{Sm})[\ufe00-\ufe0d]`,
      String.raw`(?<=[\p{L}\p{M}\p{Extended_Pictographic}\p{Emoji_Modifier}\ufe0f])[\u200c\u200d](?=[\p{L}\p{M}\p{Extended_Pictographic}])`,
      String.raw`(?<![\u200e\u200f\u061c])[\u200e\u200f\u061c]`,
    ].join("|") +
    ")" + String.raw`|[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\p{Default_Ignorable_Code_Point}]`,
  "gu",
);

/**
 * `text` as a terminal may show it (`NOT_AS_IS`), what it must not be handed written out (`\u001b`). Written as JSON
 * writes them, so that a JSON log line keeps parsing (JSON.stringify leaves DEL and the C1 controls as they are).
 */
export function visibleControls(text: string): string {
  return text.replace(NOT_AS_IS, (found, kept: string | undefined) => kept ?? writtenOut(found));
}

/** What ends a line for some reader: the newline, CR, VT, FF, the separators U+001C-001E, NEL, U+2028 and U+2029 (Python's `splitlines`). */
const LINE_BREAKS = /[\n\r\u000b\u000c\u001c-\u001e\u0085\u2028\u2029]/g;

/**
 * `text` as one line, its line breaks written out: an error message, on a terminal (which then writes out the other
 * controls) or in a log a script reads line by line (which gets them as sent). It may quote the broker's refusal,
 * which may quote another agent's text (red team 61: a dead letter's reason, quoted by the 410 that `interop ask`
 * printed, put a forged answer on a line of its own).
 */
export function oneLine(text: string): string {
  return text.replace(LINE_BREAKS, writtenOut);
}

/** A character as JSON escapes it: each UTF-16 unit (a tag character is two). */
function writtenOut(control: string): string {
  let written = "";
  for (let unit = 0; unit < control.length; unit++) written += `\\u${control.charCodeAt(unit).toString(16).padStart(4, "0")}`;
  return written;
}
