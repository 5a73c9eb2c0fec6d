// The target grammar: addresses, hostnames, CIDR blocks, ranges and lists, expanded into the
// host:port pairs a scan connects to, with the guards that keep a typo from scanning the
// Internet or a /8.
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { performance } from 'node:perf_hooks';

import {
  addressBits,
  formatAddress,
  parseAddress,
  parseIPv4,
  parseIPv6,
  type Address,
  type AddressFamily,
  type LookupFn,
} from '../../common/addresses.js';
import { InvalidTargetError } from '../../common/errors.js';
import {
  checkTargetListOption,
  GGML_RPC_PORT,
  normalizeTargetOptions,
  type TargetOptions,
} from '../../common/options.js';
import { TargetTableBuilder, type Endpoint, type TargetTable } from './table.js';

export type { Endpoint } from './table.js';
export type { LookupFn } from '../../common/addresses.js';

/** The default port: ggml-rpc's (kept under this name for the API). */
export const DEFAULT_PORT = GGML_RPC_PORT;
/** Jobs above this many host:port pairs need `allowLarge`. */
export const LARGE_JOB_PAIRS = 65_536;
/** The most pairs one job can hold even with `allowLarge`: a bound on memory, not a policy. */
export const MAX_JOB_PAIRS = 1 << 24;

/** An inclusive run of addresses of one family, and the token it came from. */
interface AddressRange {
  family: AddressFamily;
  first: bigint;
  last: bigint;
  token: string;
}

const HOSTNAME =
  /^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*\.?$/;

/** Splits "a,b c" into tokens; an empty entry is an error naming the list. */
export function splitList(spec: string | readonly string[], what: string): string[] {
  const items = typeof spec === 'string' ? [spec] : [...spec];
  const tokens: string[] = [];
  for (const item of items) {
    const trimmed = item.trim();
    if (trimmed === '') continue;
    const parts = trimmed.split(/\s*,\s*|\s+/);
    // An empty entry ("a,,b", "a,") is a typo worth reporting, not something to skip.
    if (parts.includes('')) throw new InvalidTargetError(item, `"${item}": empty entry in the ${what} list`);
    tokens.push(...parts);
  }
  if (tokens.length === 0) throw new InvalidTargetError('', `empty ${what} list`);
  return tokens;
}

export function parsePorts(spec: number | readonly number[] | string | undefined): number[] {
  if (spec === undefined) return [GGML_RPC_PORT];
  const tokens = typeof spec === 'string' ? splitList(spec, 'port') : [spec].flat().map(String);
  if (tokens.length === 0) throw new InvalidTargetError('', 'empty port list');
  const ports = new Set<number>();
  const parseOne = (text: string, token: string): number => {
    if (!/^[0-9]+$/.test(text)) {
      throw new InvalidTargetError(token, `${token}: "${text}" is not a port number`);
    }
    const port = Number(text);
    if (port < 1 || port > 65535) {
      throw new InvalidTargetError(token, `${token}: port must be 1..65535`);
    }
    return port;
  };
  for (const token of tokens) {
    if (/^-[0-9]+$/.test(token)) throw new InvalidTargetError(token, `${token}: port must be 1..65535`);
    const dash = token.indexOf('-');
    if (dash < 0) {
      ports.add(parseOne(token, token));
      continue;
    }
    const from = parseOne(token.slice(0, dash), token);
    const to = parseOne(token.slice(dash + 1), token);
    if (to < from) throw new InvalidTargetError(token, `${token}: range ends before it starts`);
    for (let p = from; p <= to; p++) ports.add(p);
  }
  return [...ports];
}

function single(family: AddressFamily, value: bigint, token: string): AddressRange {
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
function parseToken(token: string, wholeBlocks: boolean): AddressRange | string {
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
  if (/^[0-9.]+$/.test(text)) return parseIPv4(text) as string;
  if (text.includes(':') || text.startsWith('[')) return parseIPv6(text) as string;
  return 'not an address, range, CIDR block or hostname';
}

async function parseRanges(
  tokens: string[],
  lookup: LookupFn,
  wholeBlocks: boolean,
  pause: () => Promise<void>,
): Promise<AddressRange[]> {
  const ranges: AddressRange[] = [];
  for (const token of tokens) {
    await pause();
    const parsed = parseToken(token, wholeBlocks);
    if (typeof parsed !== 'string') {
      ranges.push(parsed);
      continue;
    }
    let addresses: Address[];
    try {
      addresses = await lookup(parsed);
    } catch (error) {
      const code = (error as { code?: string }).code ?? 'lookup failed';
      throw new InvalidTargetError(token, `${token}: name does not resolve (${code})`, { cause: error });
    }
    if (addresses.length === 0) {
      throw new InvalidTargetError(token, `${token}: name resolves to no address`);
    }
    for (const a of addresses) ranges.push(single(a.family, a.value, token));
  }
  return ranges;
}

function block(cidr: string): AddressRange {
  const [base, prefix] = cidr.split('/') as [string, string];
  const address = parseAddress(base) as Address;
  const hostBits = addressBits(address.family) - BigInt(prefix);
  return { family: address.family, first: address.value, last: address.value + (1n << hostBits) - 1n, token: cidr };
}

/**
 * IPv4 blocks and their IPv4-mapped IPv6 twins (::ffff:a.b.c.d, which an IPv6 socket connects
 * to over IPv4): a guard that knew only the dotted form would let the mapped one through.
 */
function withMapped(cidrs: readonly string[]): string[] {
  return cidrs.flatMap((cidr) => {
    const [base, prefix] = cidr.split('/') as [string, string];
    return base.includes(':') ? [cidr] : [cidr, `::ffff:${base}/${96 + Number(prefix)}`];
  });
}

/** Non-public space: private, loopback, link-local, CGNAT (IPv4); loopback, ULA, link-local (IPv6). */
const NON_PUBLIC_BLOCKS: readonly AddressRange[] = withMapped([
  '10.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '100.64.0.0/10',
  '::1/128',
  'fc00::/7',
  'fe80::/10',
]).map(block);

/**
 * Whether an address and port fall within `targets` on `ports` (the scan source's scope):
 * names in `targets` are resolved once, here; the check itself is a range compare.
 */
export async function targetScope(
  targets: string | readonly string[],
  ports: TargetOptions['ports'],
  lookup: LookupFn,
): Promise<(address: Address, port: number) => boolean> {
  const ranges = await parseRanges(splitList(targets, 'target'), lookup, false, yielder(undefined));
  const portSet = new Set(parsePorts(ports));
  return (address, port) =>
    portSet.has(port) &&
    ranges.some((r) => r.family === address.family && r.first <= address.value && address.value <= r.last);
}

/**
 * Link-local space and the cloud-metadata addresses in it (169.254.169.254; AWS's IPv6
 * fd00:ec2::254): never a backend candidate without an explicit opt-in, from any source.
 */
const LINK_LOCAL_BLOCKS: readonly AddressRange[] = withMapped(['169.254.0.0/16', 'fe80::/10', 'fd00:ec2::254/128']).map(
  block,
);

/** Whether any address of the range is link-local or a cloud-metadata address. */
export function touchesLinkLocal(range: { family: AddressFamily; first: bigint; last: bigint }): boolean {
  return LINK_LOCAL_BLOCKS.some((b) => b.family === range.family && b.first <= range.last && range.first <= b.last);
}

export const LINK_LOCAL_REFUSAL =
  'a link-local or cloud-metadata address: never connected to unless allowed (--allow-link-local, allowLinkLocal)';

export function isNonPublicRange(range: { family: AddressFamily; first: bigint; last: bigint }): boolean {
  return NON_PUBLIC_BLOCKS.some(
    (block) => block.family === range.family && block.first <= range.first && range.last <= block.last,
  );
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
class RangeSet {
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
function countRemaining(ranges: readonly AddressRange[], excluded: RangeSet): bigint {
  let total = 0n;
  for (const range of mergeRanges(ranges)) {
    for (const piece of excluded.subtractFrom(range)) total += piece.last - piece.first + 1n;
  }
  return total;
}

/** Gives the event loop a turn every so often in a long loop, so a signal can stop it. */
function yielder(signal: AbortSignal | undefined): () => Promise<void> {
  let last = performance.now();
  return async () => {
    if (performance.now() - last < 20) return;
    await new Promise((resolve) => setImmediate(resolve));
    last = performance.now();
    signal?.throwIfAborted();
  };
}

/**
 * Expands targets into host:port pairs, in the order given, each pair once. Throws
 * InvalidTargetError naming the token for bad input and for a tripped guard.
 */
export async function resolveTargets(
  targets: string | readonly string[],
  options: TargetOptions = {},
): Promise<Endpoint[]> {
  return (await expandTargets(targets, options)).toEndpoints();
}

/** resolveTargets packed into a TargetTable: what a scan runs on. */
export async function expandTargets(
  targets: string | readonly string[],
  options: TargetOptions = {},
): Promise<TargetTable> {
  // Types first (a safety switch opens only for a real `true`), then the grammar.
  const { lookup } = normalizeTargetOptions(options);
  checkTargetListOption('targets', targets);
  const ports = parsePorts(options.ports);
  const pause = yielder(options.signal);
  const ranges = await parseRanges(splitList(targets, 'target'), lookup, false, pause);
  const excluded = new RangeSet();
  if (options.exclude !== undefined) {
    for (const range of await parseRanges(splitList(options.exclude, 'exclude'), lookup, true, pause)) {
      excluded.add(range);
    }
  }

  if (options.allowPublic !== true) {
    const outside = ranges.find((r) => !isNonPublicRange(r));
    if (outside) {
      throw new InvalidTargetError(
        outside.token,
        `${outside.token}: outside private, loopback, link-local, CGNAT and ULA space; pass --allow-public (allowPublic) to scan it`,
      );
    }
  }

  if (options.allowLinkLocal === false) {
    const linkLocal = ranges.find(touchesLinkLocal);
    if (linkLocal) throw new InvalidTargetError(linkLocal.token, `${linkLocal.token}: ${LINK_LOCAL_REFUSAL}`);
  }

  const pairs = countRemaining(ranges, excluded) * BigInt(ports.length);
  if (pairs === 0n) {
    throw new InvalidTargetError(
      [options.exclude ?? ''].flat().join(','),
      'the exclusions (exclude, --exclude) remove every target: nothing is left to scan',
    );
  }
  const firstToken = ranges[0]?.token ?? '';
  if (pairs > BigInt(MAX_JOB_PAIRS)) {
    throw new InvalidTargetError(
      firstToken,
      `${pairs} host:port pairs: one job holds at most ${MAX_JOB_PAIRS}; split the range`,
    );
  }
  if (pairs > BigInt(LARGE_JOB_PAIRS) && options.allowLarge !== true) {
    throw new InvalidTargetError(
      firstToken,
      `${pairs} host:port pairs: over ${LARGE_JOB_PAIRS}; pass --allow-large (allowLarge) to scan them`,
    );
  }

  // Each range less what is excluded and what earlier ranges already named: pieces that are
  // walked without a per-address check, so a /16 costs a tight loop and no lookup set.
  const covered = excluded;
  const table = new TargetTableBuilder(Number(pairs));
  for (const range of ranges) {
    await pause();
    for (const piece of covered.subtractFrom(range)) {
      if (piece.family === 4) {
        for (let value = Number(piece.first); value <= Number(piece.last); value++) {
          for (const port of ports) table.addIPv4(value, port);
        }
      } else {
        for (let value = piece.first; value <= piece.last; value++) {
          for (const port of ports) table.add(6, value, port);
        }
      }
    }
    covered.add(range);
  }
  return table.finish();
}

export interface LocalSubnet {
  cidr: string;
  interface: string;
  address: string;
}

export interface LocalSubnetChoice {
  subnets: LocalSubnet[];
  skipped: { interface: string; address: string; reason: string }[];
}

function netmaskPrefix(netmask: string): number {
  const value = parseIPv4(netmask);
  if (typeof value === 'string') return 32;
  let prefix = 0;
  for (let bit = 31n; bit >= 0n && (value >> bit) & 1n; bit--) prefix++;
  return prefix;
}

/**
 * The default targets: the /24 around each non-internal IPv4 address of the machine (a larger
 * subnet clamps to that /24; a smaller one is kept). Public addresses are skipped. Takes the
 * interface table as an argument so tests never read, let alone scan, the real one.
 */
export function chooseLocalSubnets(
  interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces(),
): LocalSubnetChoice {
  const choice: LocalSubnetChoice = { subnets: [], skipped: [] };
  const seen = new Set<string>();
  for (const [name, infos] of Object.entries(interfaces)) {
    for (const info of infos ?? []) {
      if (info.internal || info.family !== 'IPv4') continue;
      const value = parseIPv4(info.address);
      if (typeof value === 'string') continue;
      const prefix = Math.max(24, netmaskPrefix(info.netmask));
      const hostBits = BigInt(32 - prefix);
      const network = (value >> hostBits) << hostBits;
      const range = { family: 4 as const, first: network, last: network + (1n << hostBits) - 1n };
      if (!isNonPublicRange(range)) {
        choice.skipped.push({ interface: name, address: info.address, reason: 'public address' });
        continue;
      }
      if (touchesLinkLocal(range)) {
        choice.skipped.push({ interface: name, address: info.address, reason: 'link-local address' });
        continue;
      }
      const cidr = `${formatAddress({ family: 4, value: network })}/${prefix}`;
      if (seen.has(cidr)) continue;
      seen.add(cidr);
      choice.subnets.push({ cidr, interface: name, address: info.address });
    }
  }
  return choice;
}

/**
 * The default targets when none are named: the subnets chooseLocalSubnets picks, as CIDR
 * blocks, and a line for each choice and skip, to say out loud (a LAN scan is never a surprise).
 */
export function localSubnetTargets(interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces()): {
  cidrs: string[];
  notes: string[];
} {
  const choice = chooseLocalSubnets(interfaces);
  const notes = choice.skipped.map((s) => `skipping ${s.interface} (${s.address}): ${s.reason}`);
  if (choice.subnets.length > 0) {
    notes.push(
      `no targets given; scanning local subnets ${choice.subnets.map((s) => `${s.cidr} (${s.interface})`).join(', ')}`,
    );
  }
  return { cidrs: choice.subnets.map((s) => s.cidr), notes };
}
