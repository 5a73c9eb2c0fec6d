// Several watchers on one Redis. Each registers itself (registration.ts); the subnets the scan
// source covers are leased so N watchers split them (leases.ts); events go out on the events
// channel and come in from the others (events.ts). Health checks are not leased: each watcher
// judges what it can reach. The servers a supervised coordinator uses are claimed, and the
// others' claims read (claims.ts). The watcher's resolves use the same live connection for the
// registry (registry()), instead of one connection per cycle.
//
// Whoever can write to the Redis is not trusted: every value read from it is size-capped
// before it is read whole (on the server, by script), checked against its shape, and ignored
// with a counted, rate-limited log line when wrong (ignored.ts). With a fleet key, every
// message, registration and lease is signed (signing.ts) and unsigned ones are ignored.
//
// Two connections, both the watcher's own and long-lived: commands, and the subscriber (a
// connection in subscribe mode takes no other command). Commands fail at once while Redis is
// down (no queue), both reconnect with backoff, and the loss and the return are each said once.
import type { Redis } from 'ioredis';

import type { WatchEvent } from '../watch/types.js';
import type { LookupFn } from '../common/addresses.js';
import type { HostPort } from '../common/host-port.js';
import { redactUrl } from '../common/options.js';
import { ClaimReader, CoordinatorClaims, type Claim } from './claims.js';
import { liveConnection, REDIS_TIMEOUT_MS } from './connection.js';
import { EventChannel, receiveMessage } from './events.js';
import { IgnoredValues, type FleetLog, type IgnoredKind } from './ignored.js';
import { RedisKeys } from './keys.js';
import { Leases } from './leases.js';
import { Registrations, type OwnInfo } from './registration.js';
import { RedisRegistry } from './registry.js';
import type { RemoteEvent, ScannerInfo } from './shapes.js';
import { Signer } from './signing.js';

export type { IgnoredKind } from './ignored.js';
export type { RemoteEvent, ScannerInfo } from './shapes.js';
export { MAX_MESSAGE_BYTES } from './events.js';
export { canonicalJson } from './signing.js';

export interface FleetOptions {
  url: string;
  prefix?: string;
  info: OwnInfo;
  /** How long a lease lives unless renewed: past one resolve interval, so the holder keeps it. */
  leaseMs: number;
  /** Registration refresh; the scanner key lives three of these. */
  heartbeatMs: number;
  /** The shared secret that signs what watchers write; without it nothing is signed. */
  key?: Buffer;
  log: FleetLog;
  onRemote: (remote: RemoteEvent) => void;
  /** Redis came back after a loss: resynchronise (re-register is done here; resolve now). */
  onReconnect: () => void;
}

export class Fleet {
  readonly #options: FleetOptions;
  readonly #keys: RedisKeys;
  readonly #signer: Signer;
  readonly #redis: Redis;
  readonly #subscriber: Redis;
  readonly #ignored: IgnoredValues;
  readonly #registrations: Registrations;
  readonly #leases: Leases;
  readonly #events: EventChannel;
  readonly #claims: ClaimReader;
  /** Every CoordinatorClaims made here: released on close. */
  readonly #claimSets = new Set<CoordinatorClaims>();
  readonly #heartbeat: NodeJS.Timeout;
  #scanning: string[] = [];
  #lost = false;
  #everReady = false;
  #closed = false;

  private constructor(options: FleetOptions, redis: Redis, subscriber: Redis) {
    this.#options = options;
    this.#keys = new RedisKeys(options.prefix);
    this.#signer = new Signer(options.key);
    this.#redis = redis;
    this.#subscriber = subscriber;
    this.#ignored = new IgnoredValues(options.log);
    const id = options.info.id;
    this.#registrations = new Registrations(redis, this.#keys, this.#signer, this.#ignored, options);
    this.#leases = new Leases(redis, this.#keys, this.#signer, this.#ignored, {
      id,
      leaseMs: options.leaseMs,
      registrations: this.#registrations,
    });
    this.#events = new EventChannel(redis, this.#keys, this.#signer, id);
    this.#claims = new ClaimReader(redis, this.#keys, this.#signer, this.#ignored);
    redis.on('ready', () => this.#ready());
    redis.on('error', (error: Error) => this.#trouble(error));
    redis.on('close', () => this.#trouble(new Error('connection closed')));
    subscriber.on('error', () => {}); // said through the main connection
    // Every (re)connect subscribes, the first one after a late Redis included.
    subscriber.on('ready', () => void subscriber.subscribe(this.#keys.events).catch(() => {}));
    subscriber.on('messageBuffer', (_channel: Buffer, message: Buffer) => {
      try {
        const remote = receiveMessage(message, { origin: id, signer: this.#signer }, (reason) =>
          this.ignore('event', reason),
        );
        if (remote) options.onRemote(remote);
      } catch (error) {
        // Nothing a writer sends may throw out of ioredis's data handler.
        this.ignore('event', `could not be handled: ${(error as Error).message}`);
      }
    });
    this.#heartbeat = setInterval(() => void this.#register(), options.heartbeatMs);
    this.#heartbeat.unref();
  }

  /** Starts connecting; never throws for a Redis that is down (it keeps trying, and says so). */
  static async start(options: FleetOptions): Promise<Fleet> {
    // The 'ready' handler subscribes, on every connect.
    const [redis, subscriber] = await Promise.all([
      liveConnection(options.url, { autoResubscribe: false }),
      liveConnection(options.url, { autoResubscribe: false }),
    ]);
    const fleet = new Fleet(options, redis, subscriber);
    await Promise.all([
      redis.connect().catch((error: Error) => fleet.#trouble(error)),
      subscriber.connect().catch(() => {}),
    ]);
    return fleet;
  }

  get connected(): boolean {
    return this.#redis.status === 'ready';
  }

  /** Values read from Redis and ignored, by kind, since the start (a stored one once). */
  get ignored(): Readonly<Record<IgnoredKind, number>> {
    return this.#ignored.counts;
  }

  /** Counts a value that is ignored (see IgnoredValues.ignore). */
  ignore(kind: IgnoredKind, reason: string, key?: string): void {
    this.#ignored.ignore(kind, reason, key);
  }

  /**
   * The registry over this fleet's live connection, for one resolve (never closes it), or why
   * not while Redis is down. Its changes go out signed as this watcher's.
   */
  registry(ttlSeconds: number): RedisRegistry | string {
    const url = this.#options.url;
    if (!this.connected || this.#closed) return `Redis unavailable at ${redactUrl(url)}: not connected (reconnecting)`;
    return RedisRegistry.over(this.#redis, { url, prefix: this.#options.prefix, ttlSeconds }, (registry) =>
      this.#events.publish({ registry }),
    );
  }

  #ready(): void {
    if (this.#lost)
      this.#options.log('info', 'Redis reachable again; resynchronising', { redis: redactUrl(this.#options.url) });
    void this.#register();
    if (this.#lost) this.#options.onReconnect();
    this.#lost = false;
    this.#everReady = true;
  }

  #trouble(error: Error): void {
    if (this.#lost || this.#closed) return;
    if (!this.#everReady && error.message === 'connection closed') return; // the error said it
    this.#lost = true;
    this.#options.log('warn', 'Redis lost; going on with the other sources and reconnecting', {
      redis: redactUrl(this.#options.url),
      error: error.message,
    });
  }

  async #register(): Promise<void> {
    if (!this.connected || this.#closed) return;
    await this.#registrations.write(this.#scanning);
  }

  /** The watchers registered now (see Registrations.scanners). */
  scanners(holders: readonly string[] = []): Promise<ScannerInfo[]> {
    return this.#registrations.scanners(holders);
  }

  /** Which of `subnets` this watcher scans this cycle (see Leases.lease); throws when Redis is down. */
  async lease(subnets: readonly string[]): Promise<{ mine: string[]; others: Record<string, string> }> {
    await this.#register();
    const outcome = await this.#leases.lease(subnets);
    this.#scanning = outcome.mine;
    await this.#register();
    return outcome;
  }

  /** Claims for a coordinator this watcher supervises, renewed every `renewMs` (clamped to 1-10 s). */
  coordinatorClaims(renewMs: number, lookup?: LookupFn): CoordinatorClaims {
    const { id, host, pid } = this.#options.info;
    const claims = new CoordinatorClaims(this.#redis, this.#keys, this.#signer, this.#claims, {
      watcher: id,
      host,
      pid,
      renewMs,
      lookup,
    });
    this.#claimSets.add(claims);
    return claims;
  }

  /** The claims on `servers` (canonical addresses), and with `list` every other one (bounded). */
  claims(servers: readonly HostPort[], list: boolean): Promise<Claim[]> {
    return this.#claims.read(servers, list);
  }

  /** Tells the other watchers; a Redis that is down loses the message (they check for themselves). */
  publish(event: WatchEvent): void {
    if (!this.connected) return;
    this.#events.publish({ event }).catch(() => {});
  }

  /** Lets go of the leases and the registration, then disconnects; bounded in time. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#heartbeat);
    // Claims stop renewing at once; while Redis is down they expire on their own.
    const released = [...this.#claimSets].map((c) => c.release().catch(() => {}));
    if (this.connected) {
      const work = Promise.all([
        this.#leases.releaseAll(this.#scanning),
        this.#registrations.remove(),
        ...released,
      ]).catch(() => {});
      await Promise.race([work, new Promise((r) => setTimeout(r, REDIS_TIMEOUT_MS))]);
    }
    this.#redis.disconnect();
    this.#subscriber.disconnect();
  }
}
