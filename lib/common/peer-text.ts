// Everything a peer says is data. Strings taken from a peer (versions, messages, model names)
// pass through here before they reach a result: control characters (C0, DEL, C1) and the
// Unicode bidi overrides, which can rewrite a terminal or reorder what a person reads, are
// dropped, and the length is bounded.

// C0 controls, DEL, C1 controls, and the bidi embedding/override/isolate characters.
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

/** A peer's string made safe to print, at most `max` characters ('…' marks a cut). */
export function peerText(value: string, max = 128): string {
  const clean = value.replace(UNSAFE, '');
  return clean.length > max ? `${clean.slice(0, max - 1)}…` : clean;
}

/** A table cell made safe for a terminal: control characters shown as '?', never sent raw. */
export function terminalSafe(cell: string): string {
  return cell.replace(UNSAFE, '?');
}
