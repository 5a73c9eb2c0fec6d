// A ggml-rpc protocol version as llama.cpp writes it: "major.minor.patch", each 0..255.

/** "3.6.1" → [3, 6, 1]; null for anything else. */
export function parseVersion(text: string): [number, number, number] | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) return null;
  const v = [Number(m[1]), Number(m[2]), Number(m[3])] as [number, number, number];
  return v.every((n) => n <= 255) ? v : null;
}
