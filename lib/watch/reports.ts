// Backends other watchers report: an event from another watcher on the same Redis naming a
// backend it saw alive makes that backend a candidate here, if it is within this watcher's
// own scope and the interval's report budget has room. Candidates are verified here as any
// candidate is (the same guards), then followed under the source that covers them.
import { formatHostPort } from '../common/host-port.js';
import type { WatchVerifier } from '../resolver/for-watcher.js';
import type { SourceName } from '../resolver/types.js';
import type { Fleet, RemoteEvent } from '../redis/fleet.js';
import type { FollowedSet } from './followed.js';
import type { WatchScope } from './scope.js';
import type { WatchLogFn } from './types.js';

/** Reports from other watchers verified per resolve interval, in all and from one watcher. */
export const REPORT_BUDGET = { total: 32, perOrigin: 8 } as const;

/** A followed backend lists at most this many other watchers reporting it. */
const MAX_REPORTERS = 16;

/** A backend another watcher reported, and which of this watcher's sources covers it. */
interface Reported {
  host: string;
  port: number;
  origin: string;
  saw: string;
  /** Undefined when it came before this watcher knew its scope. */
  source?: SourceName;
}

export interface PeerReportsContext {
  followed: FollowedSet;
  scope: WatchScope;
  fleet: () => Fleet | undefined;
  closing: () => boolean;
  /** A report is waiting: end the loop's sleep. */
  wake: () => void;
  log: WatchLogFn;
}

export class PeerReports {
  readonly #ctx: PeerReportsContext;
  /** Backends other watchers report alive that this one does not follow yet: checked next. */
  readonly #pending = new Map<string, Reported>();
  /** Reports taken this resolve interval, in all and by origin (REPORT_BUDGET). */
  #taken = 0;
  readonly #from = new Map<string, number>();
  /** Backends reported this interval: each is checked at most once per interval, whoever repeats it. */
  readonly #seen = new Set<string>();

  constructor(ctx: PeerReportsContext) {
    this.#ctx = ctx;
  }

  /** Reports waiting to be checked. */
  get pending(): number {
    return this.#pending.size;
  }

  /** A new resolve interval: a new budget. */
  newInterval(): void {
    this.#taken = 0;
    this.#from.clear();
    this.#seen.clear();
  }

  /** Another watcher's event: who reports a followed backend, or a new candidate to check. */
  offer({ origin, event }: RemoteEvent): void {
    const key = formatHostPort(event.backend);
    const followed = this.#ctx.followed.get(key);
    const alive = event.type !== 'down' && event.type !== 'removed' && event.backend.state === 'up';
    if (followed) {
      const by = new Set(followed.view.reportedBy ?? []);
      if (!alive) by.delete(origin);
      else if (by.size < MAX_REPORTERS) by.add(origin);
      if (by.size > 0) followed.view.reportedBy = [...by];
      else delete followed.view.reportedBy;
      return;
    }
    if (!alive || this.#ctx.closing() || this.#seen.has(key)) return;
    // Before the first resolve the scope is not known yet: judged when the report is checked.
    const { scope } = this.#ctx;
    const source = scope.known ? scope.of(event.backend.host, event.backend.port) : undefined;
    if (typeof source === 'object') {
      this.#ctx.fleet()?.ignore('event', `outside this watcher's scope: ${key} from ${origin} (${source.why})`);
      return;
    }
    const fromOrigin = this.#from.get(origin) ?? 0;
    if (this.#taken >= REPORT_BUDGET.total || fromOrigin >= REPORT_BUDGET.perOrigin) {
      const budget = `${REPORT_BUDGET.total} per interval, ${REPORT_BUDGET.perOrigin} per watcher`;
      this.#ctx.fleet()?.ignore('event', `over the report budget (${budget}): ${key} from ${origin}`);
      return;
    }
    this.#taken += 1;
    this.#from.set(origin, fromOrigin + 1);
    this.#seen.add(key);
    this.#pending.set(key, {
      host: event.backend.host,
      port: event.backend.port,
      origin,
      saw: event.cause.saw,
      source,
    });
    this.#ctx.wake();
  }

  /** The waiting reports still within scope and not followed yet; the rest are ignored. */
  #take(): (Reported & { source: SourceName })[] {
    const reported: (Reported & { source: SourceName })[] = [];
    for (const r of this.#pending.values()) {
      if (this.#ctx.followed.has(formatHostPort(r))) continue;
      const source = r.source ?? this.#ctx.scope.of(r.host, r.port);
      if (typeof source === 'object') {
        const why = `outside this watcher's scope: ${formatHostPort(r)} from ${r.origin} (${source.why})`;
        this.#ctx.fleet()?.ignore('event', why);
      } else reported.push({ ...r, source });
    }
    this.#pending.clear();
    return reported;
  }

  /**
   * Verifies the waiting reports and follows those that verify (`added`, with `reportedBy`).
   * When any was left to verify, `end` runs in the turn of the last one's event.
   */
  async check(verifier: WatchVerifier, end: () => void): Promise<void> {
    const reported = this.#take();
    if (reported.length === 0) return;
    const { followed: set, log } = this.#ctx;
    const { kept, dropped } = await verifier.verify(
      reported.map((r) => ({ host: r.host, port: r.port, source: r.source })),
    );
    const from = (b: { host: string; port: number }) => reported.find((r) => formatHostPort(r) === formatHostPort(b));
    for (const backend of kept) {
      const report = from(backend);
      const followed = await set.follow(backend);
      if (!followed || !report) continue;
      followed.view.reportedBy = [report.origin];
      set.added(followed, {
        check: 'peer',
        saw: `watcher ${report.origin} reported it (${report.saw}); here: ${backend.reason ?? 'verified'}`,
      });
    }
    if (dropped.length > 0) {
      log('info', 'backends other watchers reported do not verify here', {
        backends: dropped.slice(0, 8).map((d) => ({
          backend: formatHostPort(d),
          watcher: from(d)?.origin,
          reason: d.reason,
        })),
        count: dropped.length,
      });
    }
    end();
  }
}
