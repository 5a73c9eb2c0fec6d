// Coordinator claims. A ggml-rpc server serves one client at a time, so when several
// supervisors (`run`) share one Redis, the servers each child uses are claimed there
// (`<prefix>claim:<address>:<port>`): all of them or none, in one script; renewed while the
// child runs, released when it stops, and expiring three renewals after a crash. A claim's
// value is {watcher, host, pid, at}, signed with a fleet key.
//
// Whoever can write to the Redis is not trusted: a claim is read at most 1 KiB, and one that
// is misshapen, unsigned (with a key), without an expiry or living longer than any claim can,
// is ignored and counted; claiming takes it over, so junk cannot keep a server from everyone.
import type { Redis } from 'ioredis';

import { formatAddress, parseAddress, systemLookup, type LookupFn } from '../common/addresses.js';
import { ClaimTakenError, InvalidOptionError } from '../common/errors.js';
import { formatHostPort, parseHostPort, type HostPort } from '../common/host-port.js';
import { peerText } from '../common/peer-text.js';
import { readStrings, scanKeys, type StringRead } from './bounded-read.js';
import type { IgnoredValues } from './ignored.js';
import type { RedisKeys } from './keys.js';
import { parseClaim, type ClaimHolder } from './shapes.js';
import { canonicalJson, signedJsonOf, type Signer } from './signing.js';

export type { ClaimHolder } from './shapes.js';

/** The largest claim read: ours are well under it. */
const MAX_CLAIM_BYTES = 1024;
/** Claim keys examined at most by a listing (4 MiB at the size cap), in reads of CLAIM_READ_BATCH. */
const MAX_CLAIM_KEYS = 4096;
const CLAIM_READ_BATCH = 128;
/** Servers one coordinator claims at most: llama-server's --rpc lists are a handful. */
export const MAX_CLAIMED_SERVERS = 64;
/** Renewal period bounds: the watch health interval, clamped. */
const MIN_RENEW_MS = 1000;
const MAX_RENEW_MS = 10_000;
/** No claim lives longer than three of the longest renewals: one that says so is not a claim. */
const MAX_CLAIM_TTL_MS = 3 * MAX_RENEW_MS;

/**
 * All or none: when any key exists with another value than ours (ARGV[2 + i]), nothing is
 * set and each such key comes back as {index, length, pttl, value when at most ARGV[2] bytes}
 * (length -2: not a string); else every key is set to its value, living ARGV[1] ms.
 */
const CLAIM_ALL = `local taken = {}
local cap = tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  local t = redis.call('type', key).ok
  if t ~= 'none' then
    local n, v = -2, false
    if t == 'string' then
      n = redis.call('strlen', key)
      if n <= cap then v = redis.call('get', key) end
    end
    if v ~= ARGV[2 + i] then taken[#taken + 1] = {i, n, redis.call('pttl', key), v} end
  end
end
if #taken > 0 then return taken end
for i, key in ipairs(KEYS) do redis.call('set', key, ARGV[2 + i], 'PX', ARGV[1]) end
return taken`;

/** Per key, `action` only while the key still holds our value (ARGV[1 + i]); 0 when not. */
const IF_OURS = (action: string) => `local out = {}
for i, key in ipairs(KEYS) do
  local v = ARGV[1 + i]
  if redis.call('type', key).ok == 'string' and redis.call('strlen', key) == #v and redis.call('get', key) == v then
    out[i] = ${action}
  else out[i] = 0 end
end
return out`;
const RENEW_ALL = IF_OURS(`redis.call('pexpire', key, ARGV[1])`);
const RELEASE_ALL = IF_OURS(`redis.call('del', key)`);

/**
 * Deletes claim keys that are not claims: of a shape no holder writes (checked here), or
 * still the value read and judged (ARGV[2 + i]).
 */
const DROP_JUNK = `for i, key in ipairs(KEYS) do
  local t = redis.call('type', key).ok
  if t ~= 'none' then
    local pttl = redis.call('pttl', key)
    if t ~= 'string' or redis.call('strlen', key) > tonumber(ARGV[1]) or pttl < 0 or pttl > tonumber(ARGV[2]) or redis.call('get', key) == ARGV[2 + i] then
      redis.call('del', key)
    end
  end
end
return 1`;

/** A server's claim: which server (its address printed canonically), and who holds it. */
export interface Claim {
  server: HostPort;
  holder: ClaimHolder;
}

/** "held by the coordinator of watcher X on host Y", the peer's text made safe and bounded. */
export function heldByText(holder: Pick<ClaimHolder, 'watcher' | 'host'>): string {
  return `held by the coordinator of watcher ${peerText(holder.watcher, 128)} on host ${peerText(holder.host, 128)}`;
}

/** The renewal period for a watch health interval: clamped to 1-10 s. */
export function claimRenewMs(healthIntervalMs: number): number {
  return Math.min(MAX_RENEW_MS, Math.max(MIN_RENEW_MS, healthIntervalMs));
}

/** Reads claims bounded, and judges each: the holder when it counts, else ignored and counted. */
export class ClaimReader {
  readonly #redis: Redis;
  readonly #keys: RedisKeys;
  readonly #signer: Signer;
  readonly #ignored: IgnoredValues;

  constructor(redis: Redis, keys: RedisKeys, signer: Signer, ignored: IgnoredValues) {
    this.#redis = redis;
    this.#keys = keys;
    this.#signer = signer;
    this.#ignored = ignored;
  }

  /** The text a claim's signature covers: the server, so a claim cannot be copied to another. */
  signed(server: string, holder: unknown): string {
    return `claim\n${server}\n${canonicalJson(holder)}`;
  }

  /** The holder one claim key names when it counts; undefined (counted, if a value) when not. */
  judge(rawKey: string, server: string, read: StringRead): ClaimHolder | undefined {
    const ignore = (reason: string): undefined => {
      this.#ignored.ignore('claim', `${peerText(rawKey, 100)}: ${reason}`, rawKey);
      return undefined;
    };
    const pttl = read[1];
    if (pttl > MAX_CLAIM_TTL_MS) return ignore(`lives ${Math.round(pttl / 1000)} s, longer than any claim`);
    const json = signedJsonOf(read, MAX_CLAIM_BYTES, this.#signer, (signed) => this.signed(server, signed));
    if (json === undefined) return undefined;
    if ('ignored' in json) return ignore(json.ignored);
    const parsed = json.value;
    const holder = parseClaim(parsed);
    return typeof holder === 'string' ? ignore(holder) : holder;
  }

  /**
   * The claims on `servers` (canonical addresses), read by their keys, then with `list` every
   * other claim key SCAN finds: at most 4096 keys in all, each value at most 1 KiB.
   */
  async read(servers: readonly HostPort[], list: boolean): Promise<Claim[]> {
    const named = servers.map((s) => this.#keys.claim(s.host, s.port));
    const listed = list ? await scanKeys(this.#redis, this.#keys.claims, MAX_CLAIM_KEYS) : [];
    const keys = [...new Set([...named, ...listed])].slice(0, MAX_CLAIM_KEYS);
    const claims: Claim[] = [];
    for (let i = 0; i < keys.length; i += CLAIM_READ_BATCH) {
      const batch = keys.slice(i, i + CLAIM_READ_BATCH);
      const reads = await readStrings(this.#redis, batch, MAX_CLAIM_BYTES);
      for (const [j, read] of reads.entries()) {
        const rawKey = batch[j] as string;
        const server = this.#serverOf(rawKey);
        if (typeof server === 'string') {
          this.#ignored.ignore('claim', `${peerText(rawKey, 100)}: ${server}`, rawKey);
          continue;
        }
        const holder = this.judge(rawKey, formatHostPort(server), read);
        if (holder) claims.push({ server, holder });
      }
    }
    return claims;
  }

  /** The server a claim key names, or why it names none (only the key we would build counts). */
  #serverOf(rawKey: string): HostPort | string {
    const server = parseHostPort(rawKey.slice(this.#keys.claims.length - 1));
    const address = typeof server === 'string' ? null : parseAddress(server.host);
    if (typeof server === 'string' || !address || this.#keys.claim(formatAddress(address), server.port) !== rawKey)
      return 'not a claim key (an address printed canonically, and a port)';
    return server;
  }
}

/** Who claims: the watcher whose coordinator uses the servers. */
export interface ClaimOwner {
  watcher: string;
  host: string;
  pid: number;
}

/** Why claims were lost, and which servers (host:port): the coordinator must let go of them. */
export type ClaimsLost = (why: string, servers: string[]) => void;

/**
 * The servers one coordinator uses, claimed for it: claimAll() all or none, renewed every
 * `renewMs` while held (each claim lives three renewals), release() when it stops; onLost()
 * says when a renewal finds one gone or taken.
 */
export class CoordinatorClaims {
  readonly renewMs: number;
  readonly ttlMs: number;
  readonly #redis: Redis;
  readonly #keys: RedisKeys;
  readonly #signer: Signer;
  readonly #reader: ClaimReader;
  readonly #owner: ClaimOwner;
  readonly #lookup: LookupFn;
  /** Claim key → the server (host:port) and our value there. */
  #held = new Map<string, { server: string; value: string }>();
  #timer?: NodeJS.Timeout;
  #renewing = false;
  /** performance.now() of the last renewal Redis answered (or of the claim). */
  #renewedAt = 0;
  readonly #lost: ClaimsLost[] = [];

  constructor(
    redis: Redis,
    keys: RedisKeys,
    signer: Signer,
    reader: ClaimReader,
    own: ClaimOwner & { renewMs: number; lookup?: LookupFn },
  ) {
    this.#redis = redis;
    this.#keys = keys;
    this.#signer = signer;
    this.#reader = reader;
    this.#owner = { watcher: own.watcher, host: own.host, pid: own.pid };
    this.#lookup = own.lookup ?? systemLookup;
    this.renewMs = claimRenewMs(own.renewMs);
    this.ttlMs = 3 * this.renewMs;
  }

  /** The servers held now (host:port, addresses printed canonically). */
  get servers(): string[] {
    return [...this.#held.values()].map((h) => h.server);
  }

  /**
   * Claims every one of `servers` ("host:port"), or none: throws ClaimTakenError naming the
   * holder when another's claim counts. Claims held before and not named are released after.
   */
  async claimAll(servers: readonly string[]): Promise<void> {
    if (servers.length > MAX_CLAIMED_SERVERS)
      throw new InvalidOptionError(`servers: at most ${MAX_CLAIMED_SERVERS} per claim (${servers.length} given)`);
    const wanted = await this.#locate(servers);
    if (wanted.length === 0) return this.release();
    const at = new Date().toISOString();
    const values = wanted.map(({ key, server }) => this.#held.get(key)?.value ?? this.#value(server, at));
    const keys = wanted.map((w) => w.key);
    for (let attempt = 0; ; attempt += 1) {
      const args = [String(this.ttlMs), String(MAX_CLAIM_BYTES), ...values];
      const taken = (await this.#redis.eval(CLAIM_ALL, keys.length, ...keys, ...args)) as [number, ...StringRead][];
      if (taken.length === 0) break;
      const judged = taken.map(([i, ...read]) => {
        const { key, server } = wanted[i - 1] as { key: string; server: string };
        return { key, server, read, holder: this.#reader.judge(key, server, read) };
      });
      const held = judged.find((j) => j.holder !== undefined) ?? judged[0];
      if (held?.holder || attempt > 0) {
        const { server, holder } = held as (typeof judged)[number];
        const why = holder ? heldByText(holder) : 'claimed by a value that is not a claim, which could not be cleared';
        throw new ClaimTakenError(
          server,
          holder && { watcher: holder.watcher, host: holder.host },
          `${server} is ${why}`,
        );
      }
      // Only values that are not claims: cleared (if unchanged since read), then tried again.
      const junk = judged.map((j) => j.read[2] ?? '');
      await this.#redis.eval(
        DROP_JUNK,
        judged.length,
        ...judged.map((j) => j.key),
        String(MAX_CLAIM_BYTES),
        String(MAX_CLAIM_TTL_MS),
        ...junk,
      );
    }
    const before = [...this.#held].filter(([key]) => !keys.includes(key));
    this.#held = new Map(wanted.map(({ key, server }, i) => [key, { server, value: values[i] as string }]));
    this.#renewedAt = performance.now();
    this.#timer ??= setInterval(() => void this.#renew(), this.renewMs).unref();
    if (before.length > 0) await this.#ifOurs(RELEASE_ALL, before).catch(() => {}); // they expire anyway
  }

  /** Lets go of every claim still ours (compared on the server), and stops renewing. */
  async release(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    const held = [...this.#held];
    this.#held = new Map();
    if (held.length > 0) await this.#ifOurs(RELEASE_ALL, held);
  }

  /** Every claim on the Redis, ours included (a bounded listing: 4096 keys). */
  holders(): Promise<Claim[]> {
    return this.#reader.read([], true);
  }

  /** `cb` runs when a renewal finds claims gone or taken (they are let go of: not renewed again). */
  onLost(cb: ClaimsLost): void {
    this.#lost.push(cb);
  }

  /** Our value for a server's claim: who we are, signed with a fleet key over the server too. */
  #value(server: string, at: string): string {
    const holder: ClaimHolder = { ...this.#owner, at };
    const sig = this.#signer.keyed ? this.#signer.sign(this.#reader.signed(server, holder)) : undefined;
    return JSON.stringify(sig === undefined ? holder : { ...holder, sig });
  }

  /** Each server's claim key and host:port, by its address (a name is looked up), once each. */
  async #locate(servers: readonly string[]): Promise<{ key: string; server: string }[]> {
    const located = new Map<string, string>();
    for (const text of servers) {
      const parsed = parseHostPort(text);
      if (typeof parsed === 'string') throw new InvalidOptionError(`servers: ${peerText(text, 64)}: ${parsed}`);
      const address = parseAddress(parsed.host) ?? (await this.#lookup(parsed.host))[0];
      if (!address) throw new InvalidOptionError(`servers: ${peerText(parsed.host, 64)} resolves to no address`);
      const host = formatAddress(address);
      located.set(this.#keys.claim(host, parsed.port), formatHostPort({ host, port: parsed.port }));
    }
    return [...located].map(([key, server]) => ({ key, server }));
  }

  /** RENEW_ALL or RELEASE_ALL over `held`: per key, whether it was still ours. */
  async #ifOurs(script: string, held: [string, { value: string }][]): Promise<number[]> {
    const keys = held.map(([key]) => key);
    const values = held.map(([, h]) => h.value);
    return (await this.#redis.eval(script, keys.length, ...keys, String(this.ttlMs), ...values)) as number[];
  }

  async #renew(): Promise<void> {
    if (this.#renewing || this.#held.size === 0) return;
    this.#renewing = true;
    try {
      const held = [...this.#held];
      let renewed: number[];
      try {
        renewed = await this.#ifOurs(RENEW_ALL, held);
      } catch (error) {
        // Unanswered renewals: past the TTL the claims are gone, whatever Redis says later.
        const silentMs = performance.now() - this.#renewedAt;
        if (silentMs >= this.ttlMs)
          this.#lose(held, `not renewed for ${Math.round(silentMs / 1000)} s (${(error as Error).message})`);
        return;
      }
      this.#renewedAt = performance.now();
      // A claim released or replaced meanwhile (claimAll, release) is not lost.
      const lost = held.filter(([key, h], i) => renewed[i] !== 1 && this.#held.get(key)?.value === h.value);
      if (lost.length > 0) this.#lose(lost, await this.#whyLost(lost));
    } finally {
      this.#renewing = false;
    }
  }

  /** Who has the lost claims now, as far as a bounded read says. */
  async #whyLost(lost: [string, { server: string }][]): Promise<string> {
    const reads = await readStrings(
      this.#redis,
      lost.map(([key]) => key),
      MAX_CLAIM_BYTES,
    ).catch(() => []);
    return lost
      .map(([key, { server }], i) => {
        const read = reads[i];
        const holder = read && this.#reader.judge(key, server, read);
        return `the claim on ${server} ${holder ? `was taken: ${heldByText(holder)}` : 'is gone (expired, or deleted by another)'}`;
      })
      .join('; ');
  }

  #lose(lost: [string, { server: string }][], why: string): void {
    for (const [key] of lost) this.#held.delete(key);
    if (this.#held.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
    const servers = lost.map(([, h]) => h.server);
    for (const cb of this.#lost) {
      try {
        cb(why, servers);
      } catch {
        // A listener's failure is its own; the others are told all the same.
      }
    }
  }
}
