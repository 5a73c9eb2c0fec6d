// The backends a watcher follows: each one's view, where it is, and its hysteresis. Checks
// come in as observations (tracker.ts); what changes goes out as a check notice and, when a
// transition happens, an event. A backend down for `forgetAfterMs` leaves the set.
import { compareAddresses } from '../common/addresses.js';
import { formatHostPort } from '../common/host-port.js';
import type { WatchSettings } from '../common/options.js';
import { locate } from '../resolver/for-watcher.js';
import type { Backend } from '../resolver/types.js';
import type { Endpoint } from '../scan/targets/table.js';
import { observe, track, type HysteresisPolicy, type Observation, type Tracked, type Transition } from './tracker.js';
import type { CheckKind, CheckNotice, WatchedBackend, WatchEventType } from './types.js';

export interface Followed extends Tracked {
  key: string;
  endpoint: Endpoint;
  /** The kernel's key for it, as /proc/net/tcp reads (held servers). */
  heldKey: string;
  /** performance.now() of the last connect of ours; busy servers get one per resolve interval. */
  lastConnect: number;
  /** performance.now() it went down, for forgetAfterMs (monotonic: a clock jump moves nothing). */
  downAt?: number;
}

/** What a check says happened: what kind of check, and what it saw. */
export interface Cause {
  check: CheckKind;
  saw: string;
}

/** Where the set's notices and events go (the watcher numbers and delivers the events). */
export interface FollowedOutput {
  check(notice: CheckNotice): void;
  event(type: WatchEventType, followed: Followed, cause: Cause, transition?: Transition): void;
}

/** Address order, on the addresses resolved when each backend was added (no parse per compare). */
const compareFollowed = (a: Followed, b: Followed) =>
  compareAddresses(a.endpoint, b.endpoint) || a.endpoint.port - b.endpoint.port;

export class FollowedSet {
  readonly #byKey = new Map<string, Followed>();
  readonly #settings: WatchSettings;
  readonly #policy: HysteresisPolicy;
  readonly #out: FollowedOutput;

  constructor(settings: WatchSettings, out: FollowedOutput) {
    this.#settings = settings;
    this.#policy = {
      failAfter: settings.failAfter,
      recoverAfter: settings.recoverAfter,
      freeMemoryFraction: settings.freeMemoryFraction,
    };
    this.#out = out;
  }

  get size(): number {
    return this.#byKey.size;
  }

  get(key: string): Followed | undefined {
    return this.#byKey.get(key);
  }

  has(key: string): boolean {
    return this.#byKey.has(key);
  }

  values(): IterableIterator<Followed> {
    return this.#byKey.values();
  }

  /** Every followed backend, sorted by address. */
  sorted(): Followed[] {
    return [...this.#byKey.values()].sort(compareFollowed);
  }

  /**
   * Starts following a backend the resolver just proved (the caller says `added`, and why);
   * undefined if its address is gone.
   */
  async follow(backend: Backend): Promise<Followed | undefined> {
    const where = await locate(backend.host, backend.port, this.#settings.lookup);
    if (typeof where === 'string') return undefined;
    const now = new Date().toISOString();
    const { host, port, sources, verified, ...details } = backend;
    const view: WatchedBackend = {
      host,
      port,
      state: 'up',
      sources: [...sources],
      namedAt: Object.fromEntries(sources.map((s) => [s, now])),
      verified,
      addedAt: now,
      since: now,
      lastSeen: now,
      lastCheck: { at: now, check: 'resolve', ok: true, saw: backend.reason ?? 'verified' },
      failures: 0,
      successes: 1,
      flaps: 0,
    };
    if (details.health !== undefined) view.health = details.health;
    if (details.evidence !== undefined) view.evidence = details.evidence;
    if (details.rttMs !== undefined) view.rttMs = details.rttMs;
    if (details.rpc !== undefined) view.rpc = details.rpc;
    if (details.dnsSd !== undefined) view.dnsSd = details.dnsSd;
    const { address } = where;
    const followed: Followed = {
      ...track(view),
      key: formatHostPort(backend),
      endpoint: { host, family: address.family, port, value: address.value },
      heldKey: where.heldKey,
      lastConnect: performance.now(),
    };
    this.#byKey.set(followed.key, followed);
    return followed;
  }

  /** A backend just followed: its `added` event. */
  added(followed: Followed, cause: Cause): void {
    this.#out.event('added', followed, cause);
  }

  /** One check's observation: a notice, and the event of its transition, if any. */
  apply(followed: Followed, observation: Observation, elapsedMs?: number): void {
    const notice: CheckNotice = {
      backend: followed.key,
      check: observation.check,
      ok: observation.alive !== undefined,
    };
    if (elapsedMs !== undefined) notice.elapsedMs = elapsedMs;
    this.#out.check(notice);
    const transition = observe(followed, observation, this.#policy, new Date());
    if (!transition) return;
    if (transition.type === 'down') followed.downAt = performance.now();
    if (transition.type === 'up') followed.downAt = undefined;
    this.#out.event(transition.type, followed, { check: observation.check, saw: observation.saw }, transition);
  }

  /** A witness's word that the backend is alive and in use: a good check without a connection. */
  busyByWitness(followed: Followed, saw: string, evidence?: 'held'): void {
    const { host, port } = followed.view;
    const alive: Omit<Backend, 'sources'> = { host, port, verified: true, health: 'busy', reason: saw };
    if (evidence) alive.evidence = evidence;
    this.apply(followed, { check: 'witness', saw, alive });
  }

  remove(followed: Followed, check: CheckKind, saw: string): void {
    this.#byKey.delete(followed.key);
    this.#out.event('removed', followed, { check, saw });
  }

  /** Backends down for `forgetAfterMs` leave the view. */
  forgetLongDown(): void {
    const forgetAfter = this.#settings.forgetAfterMs;
    for (const followed of [...this.#byKey.values()]) {
      if (followed.downAt !== undefined && performance.now() - followed.downAt >= forgetAfter) {
        this.remove(followed, 'forget', `down for ${Math.round(forgetAfter / 1000)} s`);
      }
    }
  }
}
