// The target grammar: addresses, hostnames, CIDR blocks, ranges and lists, expanded into the
// host:port pairs a scan connects to, through the guards (guards.ts) that keep a typo from
// scanning the Internet or a /8. One token's parsing and the range arithmetic: ranges.ts.
import { performance } from 'node:perf_hooks';

import type { Address, LookupFn } from '../../common/addresses.js';
import { InvalidTargetError } from '../../common/errors.js';
import {
  checkTargetListOption,
  GGML_RPC_PORT,
  normalizeTargetOptions,
  type TargetOptions,
} from '../../common/options.js';
import { isNonPublicRange, LINK_LOCAL_REFUSAL, touchesLinkLocal } from './guards.js';
import { countRemaining, parseToken, RangeSet, single, type AddressRange } from './ranges.js';
import { TargetTableBuilder, type Endpoint, type TargetTable } from './table.js';

export type { Endpoint } from './table.js';
export type { LookupFn } from '../../common/addresses.js';

/** The default port: ggml-rpc's (kept under this name for the API). */
export const DEFAULT_PORT = GGML_RPC_PORT;
/** Jobs above this many host:port pairs need `allowLarge`. */
export const LARGE_JOB_PAIRS = 65_536;
/** The most pairs one job can hold even with `allowLarge`: a bound on memory, not a policy. */
export const MAX_JOB_PAIRS = 1 << 24;

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
