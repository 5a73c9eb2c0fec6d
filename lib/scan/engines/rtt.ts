// Adaptive connect timing, the JS twin of native/core/rtt.hh (the same rules, so both engines
// give up on a silent host alike): RFC 6298's round-trip estimator and the queues of pending
// connects whose timeouts it sets.
import { performance } from 'node:perf_hooks';

import type { EngineTiming } from '../addon/layout.js';

/**
 * SRTT and RTTVAR over every connect that completed or was refused (a retry's new socket is a
 * clean sample, so Karn's rule has nothing to discard). A first attempt's timeout is
 * clamp(SRTT + 4·RTTVAR, floor, ceiling), the ceiling until a first sample; attempt k waits
 * min(ceiling, timeout·2^k). With floor === ceiling every attempt waits exactly that.
 */
export class RttEstimator {
  #srtt: number | null = null;
  #rttvar = 0;
  #timeout: number;

  constructor(
    readonly floorMs: number,
    readonly ceilingMs: number,
  ) {
    this.#timeout = ceilingMs;
  }

  sample(rttMs: number): void {
    if (this.#srtt === null) {
      this.#srtt = rttMs;
      this.#rttvar = rttMs / 2;
    } else {
      // RFC 6298 2.3: RTTVAR first, from the SRTT before this sample.
      this.#rttvar = 0.75 * this.#rttvar + 0.25 * Math.abs(this.#srtt - rttMs);
      this.#srtt = 0.875 * this.#srtt + 0.125 * rttMs;
    }
    this.#timeout = Math.min(this.ceilingMs, Math.max(this.floorMs, this.#srtt + 4 * this.#rttvar));
  }

  get timeoutMs(): number {
    return this.#timeout;
  }

  attemptTimeoutMs(attempt: number): number {
    return Math.min(this.ceilingMs, this.#timeout * 2 ** attempt);
  }

  snapshot(retried: number): EngineTiming {
    const sampled = this.#srtt !== null;
    return {
      srttMs: this.#srtt,
      rttvarMs: sampled ? this.#rttvar : null,
      timeoutMs: this.#timeout,
      retried,
    };
  }
}

interface Pending {
  started: number;
  expire: () => void;
}

/**
 * Pending connects, one FIFO per attempt number. At any moment every connect of one attempt
 * number has the same timeout, and each FIFO is in start order, so only its front can be due;
 * one timer, set for the earliest front, serves them all. Call reschedule() when the
 * estimator has a new sample. An expire() of a connect that has answered is the caller's no-op.
 */
export class ConnectTimers {
  readonly #levels: { items: Pending[]; head: number }[];
  #timer: NodeJS.Timeout | undefined;
  #armedAt = Infinity;

  constructor(
    readonly rtt: RttEstimator,
    maxAttempt: number,
  ) {
    this.#levels = Array.from({ length: maxAttempt + 1 }, () => ({ items: [], head: 0 }));
  }

  /** `started` on performance.now()'s clock. */
  push(attempt: number, started: number, expire: () => void): void {
    (this.#levels[attempt] as { items: Pending[] }).items.push({ started, expire });
    this.reschedule();
  }

  /** Expires every connect due by `now`; returns how many. */
  expireDue(now: number): number {
    let expired = 0;
    this.#levels.forEach((level, attempt) => {
      const timeout = this.rtt.attemptTimeoutMs(attempt);
      while (level.head < level.items.length && now - (level.items[level.head] as Pending).started >= timeout) {
        (level.items[level.head++] as Pending).expire();
        expired++;
      }
      if (level.head > 1024 && level.head * 2 > level.items.length) {
        level.items = level.items.slice(level.head);
        level.head = 0;
      }
    });
    return expired;
  }

  /** When the next front falls due at the current timeouts; Infinity when nothing is pending. */
  nextDeadline(): number {
    let next = Infinity;
    this.#levels.forEach((level, attempt) => {
      const front = level.items[level.head];
      if (front) next = Math.min(next, front.started + this.rtt.attemptTimeoutMs(attempt));
    });
    return next;
  }

  reschedule(): void {
    const next = this.nextDeadline();
    if (next >= this.#armedAt) return;
    clearTimeout(this.#timer);
    this.#armedAt = next;
    if (next === Infinity) return;
    // libuv's timers are whole ms and may fire a little early: expireDue re-checks and the
    // next reschedule waits out the rest.
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.#armedAt = Infinity;
        this.expireDue(performance.now());
        this.reschedule();
      },
      Math.max(0, Math.ceil(next - performance.now())),
    );
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedAt = Infinity;
  }
}
