// CLI behaviour that needs silent hosts or no network at all.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runCli, startCli } from '../helpers/cli.js';
import { listen } from '../helpers/net.js';
import { clearFirewall, dropAllBut, enterIsolatedNamespace } from '../helpers/netns.js';

describe('CLI in an isolated namespace', () => {
  beforeAll(() => {
    enterIsolatedNamespace();
    dropAllBut(50052, ['127.0.0.45', '127.0.0.48', '127.0.0.154', '127.0.9.7']);
  });
  afterAll(() => clearFirewall());

  it('SIGINT prints what was found so far and exits 130', async () => {
    const listeners = [await listen('127.0.0.45', 50052), await listen('127.0.0.48', 50052)];
    // Both servers connected to: the scan is running (a slow start, as under ASan, is not a
    // SIGINT before the handler), and the silent hosts still wait out their 10 s.
    const reached = listeners.map(({ server }) => new Promise((resolve) => server.once('connection', resolve)));
    const { child, done } = startCli(['scan', '127.0.0.0/24', '--timeout', '10000', '--format', 'json']);
    await Promise.race([Promise.all(reached), done]);
    // The server sees the handshake before the scan's poller reports it: a moment to take it in.
    await new Promise((resolve) => setTimeout(resolve, 300));
    child.kill('SIGINT');
    const run = await done;
    expect(run.code).toBe(130);
    const report = JSON.parse(run.stdout);
    expect(
      report.results.filter((r: { state: string }) => r.state === 'open').map((r: { host: string }) => r.host),
    ).toEqual(['127.0.0.45', '127.0.0.48']);
    expect(report.results.every((r: { state: string }) => r.state !== 'filtered')).toBe(true);
    expect(report.interrupted).toBe(true);
    expect(run.stderr).toContain('interrupted');
  });

  it('a name that does not resolve is a usage error naming it (no network here, so no query leaves)', async () => {
    const run = await runCli(['scan', 'no-such-backend.invalid']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('no-such-backend.invalid: name does not resolve');
  });

  for (const engine of ['native', 'js']) {
    it(`${engine}: ulimit -n 128 with --concurrency 1000 over 1,024 silent targets narrows the window and stays correct`, async () => {
      await listen('127.0.9.7', 50052);
      const run = await runCli(
        [
          'scan',
          '127.0.8.0-127.0.11.255',
          '--timeout',
          '200',
          '--concurrency',
          '1000',
          '--format',
          'json',
          '--engine',
          engine,
        ],
        { shellPrefix: 'ulimit -n 128 &&' },
      );
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      const { results } = JSON.parse(run.stdout) as { results: { host: string; state: string }[] };
      expect(results).toHaveLength(1024);
      expect(results.filter((r) => r.state === 'open').map((r) => r.host)).toEqual(['127.0.9.7']);
      expect(results.filter((r) => r.state === 'filtered')).toHaveLength(1023);
    });
  }
});
