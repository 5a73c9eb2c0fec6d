// The two engines side by side on one fixture holding every state: they must agree on each.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { scanAll, type ScanReport } from '../../lib/scan/job.js';
import { listen } from '../helpers/net.js';
import { clearFirewall, enterIsolatedNamespace, setFirewall } from '../helpers/netns.js';

const PORTS = [50052, 11434];

function states(report: ScanReport): Record<string, string> {
  return Object.fromEntries(
    report.results.map((r) => [`${r.host}:${r.port}`, r.error ? `${r.state}/${r.error}` : r.state]),
  );
}

describe('native and js engines agree on every state', () => {
  beforeAll(() => {
    enterIsolatedNamespace();
    // .40-.47: port 50052 answers, 11434 is silent on .44-.47.
    setFirewall(`table inet scan_backends_test {
  chain input {
    type filter hook input priority 0;
    ip daddr 127.0.0.44-127.0.0.47 tcp dport 11434 drop
    ip daddr 127.0.0.46-127.0.0.47 tcp dport 50052 drop
  }
}`);
  });
  afterAll(() => clearFirewall());

  it('open, closed, filtered and unreachable, over two ports and both families', async () => {
    await listen('127.0.0.41', 50052);
    await listen('127.0.0.42', 11434);
    await listen('::1', 50052);
    // fd00::1 has no route in a namespace holding only lo: the kernel answers ENETUNREACH.
    const targets = ['127.0.0.40-47', '::1', 'fd00::1'];
    const options = { ports: PORTS, timeoutMs: 300 };
    const [native, js] = [
      await scanAll(targets, { ...options, engine: 'native' }),
      await scanAll(targets, { ...options, engine: 'js' }),
    ];

    expect(states(native)).toEqual(states(js));
    const expected: Record<string, string> = {};
    for (let h = 40; h <= 47; h++) {
      expected[`127.0.0.${h}:50052`] = h === 41 ? 'open' : h >= 46 ? 'filtered' : 'closed';
      expected[`127.0.0.${h}:11434`] = h === 42 ? 'open' : h >= 44 ? 'filtered' : 'closed';
    }
    expected['::1:50052'] = 'open';
    expected['::1:11434'] = 'closed';
    expected['fd00::1:50052'] = 'unreachable/ENETUNREACH';
    expected['fd00::1:11434'] = 'unreachable/ENETUNREACH';
    expect(states(native)).toEqual(expected);
  });

  it('agree under adaptive timing (the default), and report the same timing rules', async () => {
    await listen('127.0.0.41', 50052);
    await listen('127.0.0.42', 11434);
    const targets = ['127.0.0.40-47', 'fd00::1'];
    const [native, js] = [
      await scanAll(targets, { ports: PORTS, engine: 'native' }),
      await scanAll(targets, { ports: PORTS, engine: 'js' }),
    ];
    expect(states(native)).toEqual(states(js));
    expect(Object.values(states(native)).filter((s) => s === 'filtered')).toHaveLength(6);
    // Answers arrived, so both gave up on the six silent ports at the floor and retried each once.
    for (const report of [native, js]) {
      expect(report.timing).toMatchObject({ mode: 'adaptive', floorMs: 30, ceilingMs: 1000, retried: 6 });
    }
  });

  it('retries only silent targets, each retry a full timeout', async () => {
    for (const engine of ['native', 'js'] as const) {
      const started = performance.now();
      const report = await scanAll('127.0.0.45-46', { engine, ports: 50052, timeoutMs: 150, retries: 2 });
      expect(report.results.map((r) => r.state)).toEqual(['closed', 'filtered']);
      // Three silent attempts of 150 ms each; a lower bound cannot flake.
      expect(performance.now() - started).toBeGreaterThanOrEqual(450);
    }
  });
});
