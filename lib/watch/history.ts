// The watcher's last hour, for the dashboard's pictures: each followed backend's states as
// spans (a new span only when its state changes), and the usable set's free device memory
// (a sample when it changes, and the latest). Both bounded in time (the window) and in count, whatever
// the health interval, however often a backend flaps and however many are followed.
import { formatHostPort } from '../common/host-port.js';
import type { HistorySpan, HistoryState, MemorySample, WatchedBackend, WatchHistory } from './types.js';

export const HISTORY_WINDOW_MS = 3_600_000;
/** Spans kept per backend: a change every 15 s for the whole hour. */
const MAX_SPANS = 240;
/**
 * Backends with a history. Past it a new backend gets none until one leaves: those already
 * drawn keep theirs (forgetting the oldest would make the strips churn at every step while
 * more than this are followed).
 */
export const MAX_HISTORY_BACKENDS = 1024;
/** Memory samples kept: a change every 5 s for the whole hour. */
const MAX_SAMPLES = 720;

/** As the strip shows it: alive and serving, alive and busy with a client, or down. */
function historyState(view: WatchedBackend): HistoryState {
  if (view.state === 'down') return 'down';
  return view.health === 'busy' ? 'busy' : 'up';
}

interface MemoryAt {
  /** Date.now() of the sample. */
  at: number;
  freeBytes: number;
  totalBytes: number;
  servers: number;
  /** As view() gives it, made once: an ISO time per sample per request was most of a request's time. */
  shown: Readonly<MemorySample>;
}

const sameMemory = (a: MemoryAt, b: MemoryAt) =>
  a.freeBytes === b.freeBytes && a.totalBytes === b.totalBytes && a.servers === b.servers;

interface Span {
  state: HistoryState;
  /** Date.now() it began. */
  from: number;
  /** As view() gives it, made once. */
  shown: Readonly<HistorySpan>;
}

export class HistoryKeeper {
  readonly #spans = new Map<string, Span[]>();
  readonly #memory: MemoryAt[] = [];

  /** After each step: every backend's state, and the usable set's memory. Backends no longer followed are forgotten. */
  record(views: readonly WatchedBackend[], now = Date.now()): void {
    const start = now - HISTORY_WINDOW_MS;
    const keys = views.map((view) => formatHostPort(view));
    const followed = new Set(keys);
    for (const key of this.#spans.keys()) if (!followed.has(key)) this.#spans.delete(key);
    for (const [i, view] of views.entries()) {
      const key = keys[i] as string;
      let spans = this.#spans.get(key);
      if (!spans) {
        if (this.#spans.size >= MAX_HISTORY_BACKENDS) continue;
        this.#spans.set(key, (spans = []));
      }
      const state = historyState(view);
      if (spans.at(-1)?.state !== state) {
        spans.push({ state, from: now, shown: Object.freeze({ state, from: new Date(now).toISOString() }) });
      }
      // The first span kept is the one the window starts in.
      while (spans.length > MAX_SPANS || (spans.length > 1 && (spans[1] as Span).from <= start)) spans.shift();
    }

    const usable = views.filter((v) => v.usable);
    const devices = usable.flatMap((v) => v.rpc?.devices ?? []);
    const memory = {
      freeBytes: devices.reduce((sum, d) => sum + d.freeBytes, 0),
      totalBytes: devices.reduce((sum, d) => sum + d.totalBytes, 0),
      servers: usable.length,
    };
    const sample: MemoryAt = {
      at: now,
      ...memory,
      shown: Object.freeze({ at: new Date(now).toISOString(), ...memory }),
    };
    // A run of equal samples is kept as its first and its last: a change is never lost, and
    // the count grows only when the memory moves.
    const [before, last] = this.#memory.slice(-2);
    if (before && last && sameMemory(before, last) && sameMemory(last, sample)) this.#memory.pop();
    this.#memory.push(sample);
    while (this.#memory.length > MAX_SAMPLES || (this.#memory[0] as MemoryAt).at < start) this.#memory.shift();
  }

  /** The last hour as the API gives it: ISO times, the backends in `order` (the snapshot's); frozen, shared. */
  view(order: readonly WatchedBackend[], now = Date.now()): WatchHistory {
    const backends = order.flatMap((b) => {
      const key = formatHostPort(b);
      const spans = this.#spans.get(key);
      if (!spans) return [];
      return [{ backend: key, spans: spans.map((s) => s.shown) }];
    });
    const memory = this.#memory.map((m) => m.shown);
    return { schema: 1, now: new Date(now).toISOString(), windowMs: HISTORY_WINDOW_MS, backends, memory };
  }
}
