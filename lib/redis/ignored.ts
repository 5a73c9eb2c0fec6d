// Values read from Redis that do not count (misshapen, too large, stale, unsigned, out of
// scope): each counted, and said in a log line at most once per kind per 10 s with the count.
import { peerText } from '../common/peer-text.js';

/** The kinds of Redis value that can be ignored, each counted. */
export type IgnoredKind = 'event' | 'scanner' | 'lease' | 'registry' | 'claim';

export type FleetLog = (level: 'info' | 'warn' | 'debug', msg: string, fields?: Record<string, unknown>) => void;

/** Stored values remembered as counted: past it the memory starts over (a count, not a leak). */
const MAX_IGNORED_KEYS = 4096;
/** One log line per kind of ignored value at most this often (the count goes on). */
const IGNORED_LOG_EVERY_MS = 10_000;

export class IgnoredValues {
  readonly #log: FleetLog;
  readonly counts: Record<IgnoredKind, number> = { event: 0, scanner: 0, lease: 0, registry: 0, claim: 0 };
  readonly #saidAt: Partial<Record<IgnoredKind, number>> = {};
  /** The stored values (kind and key) already counted: read again each cycle, counted once. */
  readonly #keys = new Set<string>();

  constructor(log: FleetLog) {
    this.#log = log;
  }

  /**
   * Counts a value that is ignored; says so at most once per kind per 10 s, with the count. A
   * stored value (`key`: a scanner key, a lease, a registry entry) is read again at every cycle
   * and page view: it is counted once, until the set of counted keys is full and starts over.
   */
  ignore(kind: IgnoredKind, reason: string, key?: string): void {
    if (key !== undefined) {
      const id = `${kind}\n${key}`;
      if (this.#keys.has(id)) return;
      if (this.#keys.size >= MAX_IGNORED_KEYS) this.#keys.clear();
      this.#keys.add(id);
    }
    this.counts[kind] += 1;
    const now = performance.now();
    const said = this.#saidAt[kind];
    if (said !== undefined && now - said < IGNORED_LOG_EVERY_MS) return;
    this.#saidAt[kind] = now;
    this.#log('warn', 'ignored a Redis value', {
      kind,
      reason: peerText(reason, 300),
      ignored: this.counts[kind],
    });
  }
}
