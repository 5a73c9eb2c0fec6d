// With a fleet key (--fleet-key-file), everything the watchers write is signed: HMAC-SHA256
// over canonical JSON (messages, registrations) or over a fixed text (leases). Without a key
// nothing is signed and nothing is checked.
import { createHmac, timingSafeEqual } from 'node:crypto';

import type { StringRead } from './bounded-read.js';
import { isRecord } from './shapes.js';

/** JSON with object keys sorted at every level: one text per value, to sign and check. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export class Signer {
  readonly #key: Buffer | undefined;

  constructor(key?: Buffer) {
    this.#key = key;
  }

  /** Whether there is a key: what is written is signed, what is read must be. */
  get keyed(): boolean {
    return this.#key !== undefined;
  }

  /** The hex signature of `text` (only with a key). */
  sign(text: string): string {
    return createHmac('sha256', this.#key as Buffer)
      .update(text)
      .digest('hex');
  }

  /** Whether `sig` signs `text` (compared in constant time). */
  signs(text: string, sig: unknown): boolean {
    if (typeof sig !== 'string' || !/^[0-9a-f]{64}$/.test(sig)) return false;
    return timingSafeEqual(Buffer.from(this.sign(text), 'hex'), Buffer.from(sig, 'hex'));
  }

  /** `value` with a `sig` over its canonical JSON when there is a key; as it is without one. */
  seal<T extends object>(value: T): T & { sig?: string } {
    return this.#key ? { ...value, sig: this.sign(canonicalJson(value)) } : value;
  }
}

/**
 * A value read bounded (readStrings) as the JSON a watcher wrote: the parsed value; undefined
 * when the key is gone; or why it is ignored (not a string, too large, no expiry, not JSON,
 * unsigned or badly signed under a fleet key). `signedText` is what its signature covers.
 */
export function signedJsonOf(
  [length, pttl, value]: StringRead,
  maxBytes: number,
  signer: Signer,
  signedText: (signed: Record<string, unknown>) => string,
): { value: unknown } | { ignored: string } | undefined {
  if (length === -1) return undefined; // expired since it was listed
  if (length === -2) return { ignored: 'not a string' };
  if (value === null) return { ignored: `larger than ${maxBytes} bytes` };
  if (pttl < 0) return { ignored: 'no expiry' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    return { ignored: 'not JSON' };
  }
  if (signer.keyed) {
    const { sig, ...signed } = isRecord(parsed) ? parsed : { sig: undefined };
    if (sig === undefined || !signer.signs(signedText(signed), sig)) {
      return { ignored: sig === undefined ? 'unsigned' : 'bad signature' };
    }
  }
  return { value: parsed };
}
