// IP address literals as bigints, so IPv4 and IPv6 share one range arithmetic.

export type AddressFamily = 4 | 6;

export interface Address {
  family: AddressFamily;
  value: bigint;
}

const V4_OCTET = /^(0|[1-9][0-9]{0,2})$/;

/** Parses a dotted quad; returns a reason string when it is not one. */
export function parseIPv4(text: string): bigint | string {
  const parts = text.split('.');
  if (parts.length !== 4) return 'not an IPv4 address';
  let value = 0n;
  for (const part of parts) {
    if (!V4_OCTET.test(part)) return `octet "${part}" is not a decimal number 0..255`;
    const octet = Number(part);
    if (octet > 255) return `octet ${octet} is out of range 0..255`;
    value = (value << 8n) | BigInt(octet);
  }
  return value;
}

/** Parses an IPv6 literal (brackets allowed, zone ids not); returns a reason when invalid. */
export function parseIPv6(text: string): bigint | string {
  let body = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  if (body.includes('%')) return 'IPv6 zone ids are not supported';
  const lastColon = body.lastIndexOf(':');
  if (body.slice(lastColon + 1).includes('.')) {
    // "::ffff:10.0.0.1": rewrite the dotted tail as its two hex groups.
    const v4 = parseIPv4(body.slice(lastColon + 1));
    if (typeof v4 === 'string') return `embedded IPv4: ${v4}`;
    body = `${body.slice(0, lastColon + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const halves = body.split('::');
  if (halves.length > 2) return '"::" may appear once';
  const parseGroups = (s: string): bigint[] | null => {
    if (s === '') return [];
    const groups = s.split(':');
    if (!groups.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) return null;
    return groups.map((g) => BigInt(`0x${g}`));
  };
  const head = parseGroups(halves[0] ?? '');
  const rest = halves.length === 2 ? parseGroups(halves[1] ?? '') : [];
  if (head === null || rest === null) return 'not an IPv6 address';
  const explicit = head.length + rest.length;
  if (halves.length === 1 ? explicit !== 8 : explicit > 7) return 'not an IPv6 address';
  const groups = [...head, ...Array<bigint>(8 - explicit).fill(0n), ...rest];
  return groups.reduce((acc, g) => (acc << 16n) | g, 0n);
}

/** Parses an IPv4 or IPv6 literal, or returns null when the text is neither. */
export function parseAddress(text: string): Address | null {
  const v4 = parseIPv4(text);
  if (typeof v4 === 'bigint') return { family: 4, value: v4 };
  const v6 = parseIPv6(text);
  if (typeof v6 === 'bigint') return { family: 6, value: v6 };
  return null;
}

/** Dotted quad, or RFC 5952 text (lower case, longest zero run compressed). */
export function formatAddress(address: Address): string {
  if (address.family === 4) {
    const v = address.value;
    return [24n, 16n, 8n, 0n].map((shift) => String((v >> shift) & 0xffn)).join('.');
  }
  const groups = Array.from({ length: 8 }, (_, i) => Number((address.value >> BigInt(112 - 16 * i)) & 0xffffn));
  let bestStart = -1;
  let bestLength = 1; // a single zero group is not compressed
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  const left = hex.slice(0, bestStart).join(':');
  const right = hex.slice(bestStart + bestLength).join(':');
  return `${left}::${right}`;
}

export function addressBits(family: AddressFamily): bigint {
  return family === 4 ? 32n : 128n;
}

/** Orders IPv4 before IPv6, then numerically. */
export function compareAddresses(a: Address, b: Address): number {
  if (a.family !== b.family) return a.family - b.family;
  return a.value < b.value ? -1 : a.value > b.value ? 1 : 0;
}

/** 127.0.0.0/8, ::1 and ::ffff:127.x: where only this machine can connect. */
export function isLoopbackAddress(text: string): boolean {
  if (text === 'localhost') return true;
  const address = parseAddress(text.replace(/^\[|\]$/g, ''));
  if (!address) return false;
  if (address.family === 4) return address.value >> 24n === 127n;
  return address.value === 1n || address.value >> 24n === 0xffff7fn;
}

/** Resolves a hostname to its addresses (the system resolver unless a test or caller gives one). */
export type LookupFn = (hostname: string) => Promise<Address[]>;

/** The system resolver, every address kept in the order it gives them. */
export const systemLookup: LookupFn = async (hostname) => {
  // node:dns loads only when a name is looked up: a scan of addresses never needs it.
  const { lookup } = await import('node:dns/promises');
  const answers = await lookup(hostname, { all: true, verbatim: true });
  return answers.flatMap((a) => parseAddress(a.address) ?? []);
};
