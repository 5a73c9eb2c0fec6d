// One suite of behaviours both engines must show, run once per engine on real loopback
// sockets. Parity between the twins is this suite passing for both, plus the side-by-side
// comparisons in test/real/parity.test.ts and test/netns/.
import { describe, expect, it } from 'vitest';

import type { EngineName, Poller } from '../../lib/common/options.js';
import { scan as scanWith, scanAll as scanAllWith, type ScanOptions, type ScanResult } from '../../lib/scan/job.js';
import { closedPort, countFds, listen } from './net.js';

export function describeScannerContract(engine: EngineName, poller: Poller = 'auto'): void {
  // Every call in the suite goes through these two, so the poller applies throughout.
  const scan = (targets: string | string[], options: ScanOptions) => scanWith(targets, { ...options, poller });
  const scanAll = (targets: string | string[], options: ScanOptions) => scanAllWith(targets, { ...options, poller });
  describe(`${engine} engine contract${poller === 'auto' ? '' : ` (poller ${poller})`}`, () => {
    it('reports open for a listener and closed for a port nothing listens on', async () => {
      const { port } = await listen('127.0.0.61');
      const report = await scanAll(['127.0.0.61', '127.0.0.62'], { engine, ports: port, timeoutMs: 2000 });
      expect(report.engine).toBe(engine);
      expect(report.schema).toBe(1);
      expect(report.results.map((r) => [r.host, r.port, r.state])).toEqual([
        ['127.0.0.61', port, 'open'],
        ['127.0.0.62', port, 'closed'],
      ]);
      for (const r of report.results) expect(r.rttMs).toBeGreaterThanOrEqual(0);
    });

    it('scans IPv6 loopback', async () => {
      const { port } = await listen('::1');
      const other = await closedPort('::1');
      const report = await scanAll('::1', { engine, ports: [port, other] });
      const states = Object.fromEntries(report.results.map((r) => [r.port, r.state]));
      expect(states).toEqual({ [port]: 'open', [other]: 'closed' });
      expect(report.results.every((r) => r.host === '::1')).toBe(true);
    });

    it('gives every host:port pair exactly one result, sorted by address then port', async () => {
      const { port } = await listen('127.0.0.70');
      const second = await closedPort('127.0.0.70');
      const report = await scanAll('127.0.0.64/28', { engine, ports: [second, port] });
      expect(report.results).toHaveLength(14 * 2);
      const keys = report.results.map((r) => `${r.host}:${r.port}`);
      expect(new Set(keys).size).toBe(keys.length);
      expect(keys.slice(0, 2)).toEqual([
        `127.0.0.65:${Math.min(port, second)}`,
        `127.0.0.65:${Math.max(port, second)}`,
      ]);
      expect(report.results.filter((r) => r.state === 'open').map((r) => r.host)).toEqual(['127.0.0.70']);
    });

    it('stays correct with a window of one socket', async () => {
      const { port } = await listen('127.0.0.81');
      const report = await scanAll('127.0.0.80-83', { engine, ports: port, concurrency: 1 });
      expect(report.results.map((r) => r.state)).toEqual(['closed', 'open', 'closed', 'closed']);
    });

    it('spaces connects by --rate', async () => {
      const port = await closedPort('127.0.0.90');
      const started = performance.now();
      const report = await scanAll('127.0.0.90-100', { engine, ports: port, rate: 50 });
      // 11 connects at 50/s need at least 10 intervals of 20 ms; a lower bound cannot flake.
      expect(performance.now() - started).toBeGreaterThanOrEqual(150);
      expect(report.results.every((r) => r.state === 'closed')).toBe(true);
    });

    it('streams results as an async iterable, and breaking out early closes every socket', async () => {
      const port = await closedPort('127.0.1.1');
      const before = countFds();
      const seen: ScanResult[] = [];
      for await (const result of scan('127.0.1.0/22', { engine, ports: port })) {
        seen.push(result);
        if (seen.length === 3) break;
      }
      expect(seen).toHaveLength(3);
      expect(countFds()).toBe(before);
    });

    it('rejects with the signal reason when the signal is already aborted, opening nothing', async () => {
      const reason = new Error('stop before start');
      const before = countFds();
      await expect(scanAll('127.0.0.1', { engine, signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
      expect(countFds()).toBe(before);
    });

    it('rejects bad options before connecting', async () => {
      await expect(scanAll('127.0.0.1', { engine, timeoutMs: 0 })).rejects.toMatchObject({
        code: 'SB_INVALID_OPTION',
        message: 'timeoutMs: must be an integer 1..3600000, got 0',
      });
      await expect(scanAll('127.0.0.1', { engine, retries: -1 })).rejects.toMatchObject({ code: 'SB_INVALID_OPTION' });
      await expect(scanAll('127.0.0.1', { engine, rate: -5 })).rejects.toMatchObject({ code: 'SB_INVALID_OPTION' });
    });

    it('closes every socket after a 1,024-target scan', async () => {
      const port = await closedPort('127.0.4.1');
      const before = countFds();
      const report = await scanAll('127.0.4.0-127.0.7.255', { engine, ports: port });
      expect(report.results).toHaveLength(1024);
      expect(report.results.every((r) => r.state === 'closed')).toBe(true);
      expect(countFds()).toBe(before);
    });
  });
}
