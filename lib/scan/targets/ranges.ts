// Address ranges: one token of the target grammar parsed into a run of addresses, and the
// set arithmetic (merge, subtract, count) the grammar and its guards run on bigints.
import {
  addressBits,
  parseAddress,
  parseIPv4,
  parseIPv6,
  type Address,
  type AddressFamily,
} from '../../common/addresses.js';
import { InvalidTargetError } from '../../common/errors.js';

/** An inclusive run of addresses of one family, and the token it came from. */
export interface AddressRange {
  family: AddressFamily;
  first: bigint;
  last: bigint;
  token: string;
}

const HOSTNAME =
  /^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*\.?$/;

export function single(family: AddressFamily, value: bigint, token: string): AddressRange {
  return { family, first: value, last: value, token };
}

/**
 * An exclusion covers its whole block; a target block of IPv4 leaves out its network and
 * broadcast addresses, which answer nothing useful (/31 and /32 have neither).
 */
function parseCidr(token: string, wholeBlock: boolean): AddressRange {
  const slash = token.indexOf('/');
  const base = token.slice(0, slash);
  const prefixText = token.slice(slash + 1);
  const address = parseAddress(base);
  if (!address) throw new InvalidTargetError(token, `${token}: ${addressError(base)}`);
  const bits = addressBits(address.family);
  if (!/^[0-9]{1,3}$/.test(prefixText) || BigInt(prefixText) > bits) {
    throw new InvalidTargetError(token, `${token}: prefix must be 0..${bits}`);
  }
  const prefix = BigInt(prefixText);
  const hostBits = bits - prefix;
  const first = (address.value >> hostBits) << hostBits;
  const last = first + (1n << hostBits) - 1n;
  if (!wholeBlock && address.family === 4 && prefix <= 30n) {
    return { family: 4, first: first + 1n, last: last - 1n, token };
  }
  return { family: address.family, first, last, token };
}

function parseRange(token: string, dash: number): AddressRange | null {
  const left = token.slice(0, dash);
  const right = token.slice(dash + 1);
  const v4 = parseIPv4(left);
  if (typeof v4 === 'bigint') {
    let last: bigint;
    if (/^[0-9]{1,3}$/.test(right)) {
      const octet = Number(right);
      if (octet > 255) throw new InvalidTargetError(token, `${token}: octet ${octet} is out of range 0..255`);
      last = (v4 & ~0xffn) | BigInt(octet);
    } else {
      const end = parseIPv4(right);
      if (typeof end === 'string') throw new InvalidTargetError(token, `${token}: range end ${end}`);
      last = end;
    }
    if (last < v4) throw new InvalidTargetError(token, `${token}: range ends before it starts`);
    return { family: 4, first: v4, last, token };
  }
  const v6 = parseIPv6(left);
  if (typeof v6 === 'bigint') {
    const end = parseIPv6(right);
    if (typeof end === 'string') throw new InvalidTargetError(token, `${token}: range end: ${end}`);
    if (end < v6) throw new InvalidTargetError(token, `${token}: range ends before it starts`);
    return { family: 6, first: v6, last: end, token };
  }
  return null; // not a range: perhaps a hostname with a dash
}

/** Parses one token; a hostname comes back as a string to resolve. */
export function parseToken(token: string, wholeBlocks: boolean): AddressRange | string {
  if (token.includes('/')) return parseCidr(token, wholeBlocks);
  const address = parseAddress(token);
  if (address) return single(address.family, address.value, token);
  const dash = token.indexOf('-');
  if (dash > 0) {
    const range = parseRange(token, dash);
    if (range) return range;
  }
  if (/^[0-9.]+$/.test(token) || token.includes(':') || token.startsWith('[') || !HOSTNAME.test(token)) {
    throw new InvalidTargetError(token, `${token}: ${addressError(token)}`);
  }
  return token;
}

/** Why text that should have been an address is not one. */
function addressError(text: string): string {
  // "10.0.0.7:50052", "gpu-1:50052": a host:port as --rpc writes it; the port belongs in -p.
  const hostPort = /^(.+):([0-9]{1,5})$/.exec(text);
  if (hostPort && (typeof parseIPv4(hostPort[1] as string) === 'bigint' || HOSTNAME.test(hostPort[1] as string))) {
    return `a port goes in -p (ports), not in the target: scan ${hostPort[1]} -p ${hostPort[2]}`;
  }
  if (/^[0-9.]+$/.test(text)) return parseIPv4(text) as string;
  if (text.includes(':') || text.startsWith('[')) return parseIPv6(text) as string;
  return 'not an address, range, CIDR block or hostname';
}

export function block(cidr: string): AddressRange {
  const [base, prefix] = cidr.split('/') as [string, string];
  const address = parseAddress(base) as Address;
  const hostBits = addressBits(address.family) - BigInt(prefix);
  return { family: address.family, first: address.value, last: address.value + (1n << hostBits) - 1n, token: cidr };
}

/** Sorted, merged union of ranges per family. */
function mergeRanges(ranges: readonly AddressRange[]): AddressRange[] {
  const sorted = [...ranges].sort((a, b) =>
    a.family !== b.family ? a.family - b.family : a.first < b.first ? -1 : a.first > b.first ? 1 : 0,
  );
  const merged: AddressRange[] = [];
  for (const range of sorted) {
    const prev = merged.at(-1);
    if (prev && prev.family === range.family && range.first <= prev.last + 1n) {
      if (range.last > prev.last) prev.last = range.last;
    } else {
      merged.push({ ...range });
    }
  }
  return merged;
}

/**
 * A union of addresses as sorted, disjoint, non-adjacent runs per family: what is left of a
 * range once the set is taken out is found by binary search, so naming n ranges costs
 * n log n, not n² (12,000 listed addresses took 26 s).
 */
export class RangeSet {
  readonly #runs: Record<AddressFamily, { first: bigint; last: bigint }[]> = { 4: [], 6: [] };

  /** Index of the first run that ends at or after `value`. */
  #firstEndingFrom(runs: { last: bigint }[], value: bigint): number {
    let lo = 0;
    let hi = runs.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((runs[mid] as { last: bigint }).last < value) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The pieces of `range` outside the set, in address order. */
  subtractFrom(range: AddressRange): AddressRange[] {
    const runs = this.#runs[range.family];
    const pieces: AddressRange[] = [];
    let from = range.first;
    for (let i = this.#firstEndingFrom(runs, range.first); i < runs.length && from <= range.last; i++) {
      const run = runs[i] as { first: bigint; last: bigint };
      if (run.first > range.last) break;
      if (run.first > from) pieces.push({ ...range, first: from, last: run.first - 1n });
      from = run.last + 1n;
    }
    if (from <= range.last) pieces.push({ ...range, first: from, last: range.last });
    return pieces;
  }

  add(range: { family: AddressFamily; first: bigint; last: bigint }): void {
    const runs = this.#runs[range.family];
    // Runs that overlap or touch the new one merge with it.
    const start = this.#firstEndingFrom(runs, range.first - 1n);
    let end = start;
    let first = range.first;
    let last = range.last;
    while (end < runs.length && (runs[end] as { first: bigint }).first <= range.last + 1n) {
      const run = runs[end] as { first: bigint; last: bigint };
      if (run.first < first) first = run.first;
      if (run.last > last) last = run.last;
      end++;
    }
    runs.splice(start, end - start, { first, last });
  }
}

/** Number of addresses in `ranges` that no range of `excluded` covers. */
export function countRemaining(ranges: readonly AddressRange[], excluded: RangeSet): bigint {
  let total = 0n;
  for (const range of mergeRanges(ranges)) {
    for (const piece of excluded.subtractFrom(range)) total += piece.last - piece.first + 1n;
  }
  return total;
}
