// Scan leases: the subnets the scan source covers are leased (`<prefix>lease:<subnet>`, SET NX
// PX) so N watchers split them, each taking its fair share in an order of its own (rendezvous
// hashing), instead of all scanning the same /24. A lease's value is its holder's id, and with
// a fleet key a signature after it. A lease counts only while it has an expiry, the right shape
// and a holder with a fresh registration; one that does not count is taken over.
import { createHash } from 'node:crypto';

import type { Redis } from 'ioredis';

import { peerText } from '../common/peer-text.js';
import { readStrings, type StringRead } from './bounded-read.js';
import type { IgnoredValues } from './ignored.js';
import type { RedisKeys } from './keys.js';
import type { Registrations } from './registration.js';
import type { Signer } from './signing.js';

/** Renews a lease only while it is still ours; releases it the same way. */
const RENEW = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
/** Deletes a lease that does not count: still the value read (ARGV[1]), or of a shape no holder writes. */
const DROP_STALE = `local t = redis.call('type', KEYS[1]).ok
if t == 'none' then return 1 end
if t ~= 'string' or redis.call('strlen', KEYS[1]) > tonumber(ARGV[2]) or redis.call('pttl', KEYS[1]) < 0 or redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0`;

/** The largest lease read: ours are well under it. */
const MAX_LEASE_BYTES = 512;

function rank(id: string, subnet: string): string {
  return createHash('sha256').update(`${id}\n${subnet}`).digest('hex');
}

/** A lease's value read back: the holder's id, and the signature after it when signed. */
function parseLease(value: string): [holder: string, sig: string | undefined] {
  const [holder = '', sig] = value.split(' ');
  return [holder, sig];
}

export interface LeaseOutcome {
  mine: string[];
  others: Record<string, string>;
}

export class Leases {
  readonly #redis: Redis;
  readonly #keys: RedisKeys;
  readonly #signer: Signer;
  readonly #ignored: IgnoredValues;
  readonly #registrations: Registrations;
  readonly #id: string;
  readonly #leaseMs: number;
  /** Subnets held past the fair share because nobody took them for a whole cycle. */
  readonly #spare = new Set<string>();
  /** Subnets left free at the end of the last cycle. */
  #leftFree = new Set<string>();

  constructor(
    redis: Redis,
    keys: RedisKeys,
    signer: Signer,
    ignored: IgnoredValues,
    own: { id: string; leaseMs: number; registrations: Registrations },
  ) {
    this.#redis = redis;
    this.#keys = keys;
    this.#signer = signer;
    this.#ignored = ignored;
    this.#id = own.id;
    this.#leaseMs = own.leaseMs;
    this.#registrations = own.registrations;
  }

  /** The value this watcher writes to hold a lease: its id, signed with a key. */
  #value(subnet: string): string {
    return this.#signer.keyed ? `${this.#id} ${this.#signer.sign(`lease\n${subnet}\n${this.#id}`)}` : this.#id;
  }

  /** The holder a lease names when it counts: the right shape, an expiry, a fresh holder. */
  #holder(subnet: string, read: StringRead, fresh: Set<string>): string | undefined {
    const [length, pttl, value] = read;
    if (length === -1) return undefined;
    const why =
      length === -2
        ? 'not a string'
        : value === null
          ? `larger than ${MAX_LEASE_BYTES} bytes`
          : pttl < 0
            ? 'no expiry'
            : undefined;
    if (why) {
      this.#ignored.ignore('lease', `${peerText(subnet, 64)}: ${why}`, subnet);
      return undefined;
    }
    const [holder, sig] = parseLease(value as string);
    if (this.#signer.keyed && !this.#signer.signs(`lease\n${subnet}\n${holder}`, sig)) {
      this.#ignored.ignore(
        'lease',
        `${peerText(subnet, 64)}: ${sig === undefined ? 'unsigned' : 'bad signature'}`,
        subnet,
      );
      return undefined;
    }
    if (!fresh.has(holder)) {
      this.#ignored.ignore(
        'lease',
        `${peerText(subnet, 64)}: held by ${peerText(holder, 64)}, which has no fresh registration`,
        `${subnet}\n${holder}`,
      );
      return undefined;
    }
    return holder;
  }

  /**
   * Which of `subnets` this watcher scans this cycle: those it holds, renewed, and free ones
   * up to its fair share (the subnets over the watchers registered), in its own order; past
   * its share (a watcher joined) it lets go of the ones it ranks last. A subnet still free a
   * cycle later is taken as a spare whatever the share, so every subnet is scanned by someone
   * within two intervals even when registrations do no work. A lease that does not
   * count (no expiry, no fresh holder, unsigned with a key) is taken over. Throws when Redis
   * is down: the caller then scans them all, on its own. The caller registers before and after.
   */
  async lease(subnets: readonly string[]): Promise<LeaseOutcome> {
    const ordered = [...subnets].sort((a, b) => rank(this.#id, a).localeCompare(rank(this.#id, b)));
    // Leases before registrations: a watcher registers before it leases, so the holder of any
    // lease read here is already registered when the registrations are read next.
    const reads = await readStrings(
      this.#redis,
      ordered.map((s) => this.#keys.lease(s)),
      MAX_LEASE_BYTES,
    );
    const holders = reads.flatMap(([, , value]) => (value ? [parseLease(value)[0]] : []));
    const fresh = new Set((await this.#registrations.scanners(holders)).map((s) => s.id));
    fresh.add(this.#id);
    const share = Math.ceil(subnets.length / fresh.size);
    const outcome: LeaseOutcome = { mine: [], others: {} };
    const free: string[] = [];
    for (const [i, subnet] of ordered.entries()) {
      const read = reads[i] as StringRead;
      const holder = this.#holder(subnet, read, fresh);
      const ours = this.#value(subnet);
      if (holder === this.#id && read[2] === ours) {
        const renewed = await this.#redis.eval(RENEW, 1, this.#keys.lease(subnet), ours, String(this.#leaseMs));
        if (renewed === 1) outcome.mine.push(subnet);
      } else if (holder !== undefined && holder !== this.#id) outcome.others[subnet] = holder;
      else {
        // Free, or a lease that does not count: cleared (only if unchanged since read) to be taken.
        if (read[0] !== -1)
          await this.#redis.eval(DROP_STALE, 1, this.#keys.lease(subnet), read[2] ?? '', String(MAX_LEASE_BYTES));
        free.push(subnet);
      }
    }
    const held = await this.#keepShare(outcome, share);
    await this.#takeFree(free, outcome, share, held);
    for (const s of this.#spare) if (!outcome.mine.includes(s)) this.#spare.delete(s);
    return { mine: subnets.filter((s) => outcome.mine.includes(s)), others: outcome.others };
  }

  /**
   * Spares fill any room in the share first (a watcher went away); past the share (a watcher
   * joined), the others are let go of, those ranked last first; spares are kept. Returns how
   * many regular (not spare) leases are held after.
   */
  async #keepShare(outcome: LeaseOutcome, share: number): Promise<number> {
    let regular = outcome.mine.filter((s) => !this.#spare.has(s)).length;
    for (const s of outcome.mine) if (regular < share && this.#spare.delete(s)) regular += 1;
    const release = outcome.mine.filter((s) => !this.#spare.has(s)).slice(share);
    for (const subnet of release) await this.#release(subnet);
    outcome.mine = outcome.mine.filter((s) => !release.includes(s));
    return regular - release.length;
  }

  /**
   * Free subnets taken up to the share; past it only one that was free at the last cycle too:
   * nobody took it (the other registrations do no work, or are a writer's), so it is scanned here.
   */
  async #takeFree(free: readonly string[], outcome: LeaseOutcome, share: number, held: number): Promise<void> {
    const leftFree: string[] = [];
    for (const subnet of free) {
      const spare = held >= share;
      if (spare && !this.#leftFree.has(subnet)) {
        leftFree.push(subnet);
        continue;
      }
      const key = this.#keys.lease(subnet);
      const taken = await this.#redis.set(key, this.#value(subnet), 'PX', this.#leaseMs, 'NX');
      if (taken !== 'OK')
        outcome.others[subnet] = '?'; // taken by another in the meantime
      else {
        outcome.mine.push(subnet);
        if (spare) this.#spare.add(subnet);
        else held += 1;
      }
    }
    this.#leftFree = new Set(leftFree);
  }

  /** Lets go of one lease, only while it is still ours. */
  async #release(subnet: string): Promise<void> {
    await this.#redis.eval(RELEASE, 1, this.#keys.lease(subnet), this.#value(subnet));
  }

  /** Lets go of every lease in `subnets`. */
  async releaseAll(subnets: readonly string[]): Promise<void> {
    await Promise.all(subnets.map((s) => this.#release(s)));
  }
}
