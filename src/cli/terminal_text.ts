/** Another agent's text as a terminal shows it. */

/**
 * C0 and C1 control characters and DEL, but for the newline and the tab; and the bidirectional embeddings, overrides
 * and isolates, which reorder what follows them on screen ("Trojan Source", CVE-2021-42574): a reply's `rm -rf ~`
 * could show as something else. The marks (LRM, RLM, ALM) stay: right-to-left text uses them, and they reorder
 * nothing by themselves.
 */
const CONTROLS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

/**
 * `text` with its control characters written out (`\u001b`), for a terminal: a reply is another agent's, and an
 * escape sequence in it would otherwise drive the operator's terminal (set its title, write its clipboard with OSC 52,
 * hide or overwrite what is shown; red team, session 52). Newlines and tabs stay. Written as JSON writes them, so that
 * a JSON log line keeps parsing (JSON.stringify leaves DEL and the C1 controls as they are).
 */
export function visibleControls(text: string): string {
  return text.replace(CONTROLS, (control) => `\\u${control.charCodeAt(0).toString(16).padStart(4, "0")}`);
}
