// The JS engine's adaptive timing (the twin of native/test/rtt_test.cc): RFC 6298's
// arithmetic, the clamp, and pending connects whose timeouts move as answers arrive.
import { describe, expect, it } from 'vitest';

import { ConnectTimers, RttEstimator } from '../../lib/scan/engines/rtt.js';

describe('RttEstimator', () => {
  it('follows RFC 6298', () => {
    const rtt = new RttEstimator(1, 1000);
    expect(rtt.timeoutMs).toBe(1000); // no sample yet: the ceiling
    expect(rtt.snapshot(0)).toEqual({ srttMs: null, rttvarMs: null, timeoutMs: 1000, retried: 0 });
    rtt.sample(10); // SRTT 10, RTTVAR 5: RTO 30
    expect(rtt.snapshot(0)).toEqual({ srttMs: 10, rttvarMs: 5, timeoutMs: 30, retried: 0 });
    rtt.sample(2); // RTTVAR 0.75·5 + 0.25·8 = 5.75, then SRTT 0.875·10 + 0.125·2 = 9
    expect(rtt.snapshot(3)).toEqual({ srttMs: 9, rttvarMs: 5.75, timeoutMs: 32, retried: 3 });
  });

  it('clamps between the floor and the ceiling, and doubles per retry up to the ceiling', () => {
    const fast = new RttEstimator(50, 1000);
    fast.sample(0.05);
    expect(fast.timeoutMs).toBe(50);
    expect([0, 1, 5].map((attempt) => fast.attemptTimeoutMs(attempt))).toEqual([50, 100, 1000]);
    const slow = new RttEstimator(50, 1000);
    slow.sample(400); // RTO 1200
    expect(slow.timeoutMs).toBe(1000);
    const fixed = new RttEstimator(700, 700); // fixed timing: every attempt the same
    fixed.sample(1);
    expect([0, 3].map((attempt) => fixed.attemptTimeoutMs(attempt))).toEqual([700, 700]);
  });
});

describe('ConnectTimers', () => {
  it('expires pending connects as the timeout moves', () => {
    const rtt = new RttEstimator(50, 1000);
    const timers = new ConnectTimers(rtt, 1);
    const expired: string[] = [];
    try {
      timers.push(0, 0, () => expired.push('a'));
      timers.push(0, 5, () => expired.push('b'));
      timers.push(1, 10, () => expired.push('retry'));
      // Before any answer every first attempt waits for the ceiling.
      expect(timers.expireDue(900)).toBe(0);
      expect(timers.nextDeadline()).toBe(1000);
      // A first answer drops the timeout to the floor: connects started earlier expire at once.
      rtt.sample(0.1);
      expect(timers.nextDeadline()).toBe(50);
      expect(timers.expireDue(60)).toBe(2);
      expect(expired).toEqual(['a', 'b']);
      // A retry waits twice the timeout.
      expect(timers.nextDeadline()).toBe(110);
      expect(timers.expireDue(109)).toBe(0);
      expect(timers.expireDue(110)).toBe(1);
      expect(expired).toEqual(['a', 'b', 'retry']);
      expect(timers.nextDeadline()).toBe(Infinity);
    } finally {
      timers.close();
    }
  });
});
