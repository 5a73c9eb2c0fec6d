// The seed scenario from the issue: in a namespace of its own, 127.0.0.45 and .48 listen on
// 50052, .154 is closed, and every other host of 127.0.0.0/24 drops SYNs.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { scanAll } from '../../lib/scan/job.js';
import { countFds, listen } from '../helpers/net.js';
import { clearFirewall, dropAllBut, enterIsolatedNamespace } from '../helpers/netns.js';

const OPEN = ['127.0.0.45', '127.0.0.48'];
const CLOSED = '127.0.0.154';

describe('seed scenario: two backends, one closed host, 251 silent hosts', () => {
  beforeAll(() => {
    enterIsolatedNamespace();
    dropAllBut(50052, [...OPEN, CLOSED]);
  });
  afterAll(() => clearFirewall());

  for (const [engine, poller] of [
    ['native', 'auto'],
    ['native', 'poll'],
    ['js', 'auto'],
  ] as const) {
    it(`${engine}${poller === 'poll' ? ' (poll poller)' : ''}: finds exactly .45 and .48, .154 closed, the rest filtered, with all targets in flight at once`, async () => {
      for (const host of OPEN) await listen(host, 50052);
      const before = countFds();
      const started = performance.now();
      const report = await scanAll('127.0.0.0/24', { engine, poller, timeoutMs: 1000 });
      const elapsed = performance.now() - started;

      const byState = (state: string) => report.results.filter((r) => r.state === state).map((r) => r.host);
      expect(byState('open')).toEqual(OPEN);
      expect(byState('closed')).toEqual([CLOSED]);
      expect(byState('filtered')).toHaveLength(251);
      expect(report.results).toHaveLength(254);
      for (const r of report.results.filter((x) => x.state === 'filtered')) {
        expect(r.rttMs).toBeGreaterThanOrEqual(1000);
      }
      // One timeout for the whole /24, not one per batch: a functional check, not a benchmark.
      expect(elapsed).toBeLessThan(3000);
      expect(countFds()).toBe(before);
    });
  }
});
