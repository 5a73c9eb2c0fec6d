// Adaptive connect timing in both engines, on the seed scenario of issue 21 (127.0.0.45 and
// .48 listen on 50052, .154 refuses, every other host of 127.0.0.0/24 drops SYNs): a host
// whose first SYN is lost is still found, a silent range reports the timing the rules give,
// and an explicit timeout stays a fixed one.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ScanAbortedError } from '../../lib/common/errors.js';
import { resolveBackends } from '../../lib/resolver/index.js';
import { scanAll, type ScanReport } from '../../lib/scan/job.js';
import { runCli } from '../helpers/cli.js';
import { configFile } from '../helpers/config.js';
import { ggmlRpcPeer } from '../helpers/ggml-rpc-peer.js';
import { countFds, listen } from '../helpers/net.js';
import { clearFirewall, dropAllBut, enterIsolatedNamespace, forgetLostSyns, loseFirstSyn } from '../helpers/netns.js';

const OPEN = ['127.0.0.45', '127.0.0.48'];
const CLOSED = '127.0.0.154';
const ENGINES = ['native', 'js'] as const;

function hostsIn(report: ScanReport, state: string): string[] {
  return report.results.filter((r) => r.state === state).map((r) => r.host);
}

describe('adaptive timing', () => {
  beforeAll(() => enterIsolatedNamespace());
  afterAll(() => clearFirewall());

  it('finds a host whose first SYN is lost, with the defaults, in both engines alike', async () => {
    for (const host of OPEN) await listen(host, 50052);
    loseFirstSyn(50052, [...OPEN, CLOSED], '127.0.0.48');
    const reports: ScanReport[] = [];
    for (const engine of ENGINES) {
      forgetLostSyns();
      const report = await scanAll('127.0.0.0/24', { engine });
      // The scenario really happened: the first SYN to .48 was dropped.
      expect(forgetLostSyns()).toEqual(['127.0.0.1']);
      expect(hostsIn(report, 'open')).toEqual(OPEN);
      expect(hostsIn(report, 'closed')).toEqual([CLOSED]);
      expect(hostsIn(report, 'filtered')).toHaveLength(251);
      // Answers set the timeout to the floor: every silent host and .48 were tried again once.
      expect(report.timing).toMatchObject({ mode: 'adaptive', floorMs: 30, ceilingMs: 1000, timeoutMs: 30 });
      expect(report.timing?.retried).toBe(252);
      expect(report.timing?.srttMs).toBeGreaterThan(0);
      reports.push(report);
    }
    const states = (r: ScanReport) => r.results.map((x) => `${x.host} ${x.state}`);
    expect(states(reports[0] as ScanReport)).toEqual(states(reports[1] as ScanReport));
  });

  it('a silent range: no answer keeps the ceiling and retries nothing; one answer brings the floor', async () => {
    dropAllBut(50052, [CLOSED]);
    for (const engine of ENGINES) {
      const silent = await scanAll('127.0.0.0/28', { engine });
      expect(hostsIn(silent, 'filtered')).toHaveLength(14);
      expect(silent.timing).toEqual({
        mode: 'adaptive',
        floorMs: 30,
        ceilingMs: 1000,
        srttMs: null,
        rttvarMs: null,
        timeoutMs: 1000,
        retried: 0,
      });
      // .154 refuses: the 13 silent hosts around it give up at the floor and are retried once.
      const mixed = await scanAll('127.0.0.144/28', { engine, minRttTimeoutMs: 40, maxRttTimeoutMs: 800 });
      expect(hostsIn(mixed, 'closed')).toEqual([CLOSED]);
      expect(hostsIn(mixed, 'filtered')).toHaveLength(13);
      expect(mixed.timing).toMatchObject({ mode: 'adaptive', floorMs: 40, ceilingMs: 800, timeoutMs: 40, retried: 13 });
    }
  });

  it('keeps the deadline and the abort: every socket closed, with the floor in force', async () => {
    dropAllBut(50052, [CLOSED]);
    // .154's refusal sets the timeout to the floor, here far beyond the deadline.
    const timing = { minRttTimeoutMs: 5000, maxRttTimeoutMs: 10_000 };
    for (const engine of ENGINES) {
      const before = countFds();
      const error = await scanAll('127.0.0.0/24', { engine, ...timing, deadlineMs: 200 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ScanAbortedError);
      expect(countFds()).toBe(before);
      const controller = new AbortController();
      const reason = new Error('operator pressed stop');
      setTimeout(() => controller.abort(reason), 100);
      await expect(scanAll('127.0.0.0/24', { engine, ...timing, signal: controller.signal })).rejects.toBe(reason);
      expect(countFds()).toBe(before);
    }
  });

  for (const engine of ENGINES) {
    it(`${engine}: ulimit -n 128 with --concurrency 1000 narrows the window and stays correct under adaptive timing`, async () => {
      clearFirewall();
      dropAllBut(50052, ['127.0.8.7']);
      await listen('127.0.8.7', 50052);
      const run = await runCli(
        ['scan', '127.0.8.0-127.0.9.255', '--concurrency', '1000', '--format', 'json', '--engine', engine],
        { shellPrefix: 'ulimit -n 128 &&' },
      );
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      const report = JSON.parse(run.stdout) as ScanReport;
      expect(report.results).toHaveLength(512);
      expect(hostsIn(report, 'open')).toEqual(['127.0.8.7']);
      expect(hostsIn(report, 'filtered')).toHaveLength(511);
      expect(report.timing?.mode).toBe('adaptive');
    });
  }

  it('an explicit --timeout stays a fixed timeout, reported as such', async () => {
    dropAllBut(50052, [CLOSED]);
    for (const engine of ENGINES) {
      const run = await runCli(['scan', '127.0.0.153-154', '--timeout', '300', '--engine', engine, '--format', 'json']);
      const report = JSON.parse(run.stdout) as ScanReport;
      expect(report.results.map((r) => r.state)).toEqual(['filtered', 'closed']);
      expect(report.results[0]?.rttMs).toBeGreaterThanOrEqual(300);
      expect(report.timing).toMatchObject({ mode: 'fixed', floorMs: 300, ceilingMs: 300, timeoutMs: 300, retried: 0 });
      // With --timing adaptive the same --timeout is the ceiling.
      const adaptive = await runCli([
        'scan',
        '127.0.0.153-154',
        '--timing',
        'adaptive',
        '--timeout',
        '300',
        '--engine',
        engine,
        '--format',
        'json',
      ]);
      expect((JSON.parse(adaptive.stdout) as ScanReport).timing).toMatchObject({ mode: 'adaptive', ceilingMs: 300 });
    }
  });

  it('a server someone named gets the whole ceiling, fixed: a far one beside a fast one is kept', async () => {
    // .48 answers each connection only at the kernel's SYN retransmission (~1 s), .45 at once:
    // adaptive timing would give .48 up after floor + 2 × floor, as a scan rightly does.
    for (const host of OPEN) await ggmlRpcPeer({ generation: '5.x', host, port: 50052 });
    loseFirstSyn(50052, OPEN, '127.0.0.48', 'connection');
    const config = configFile(['127.0.0.45:50052', '127.0.0.48:50052']);
    for (const engine of ENGINES) {
      const resolution = await resolveBackends({
        sources: ['config'],
        configPath: config,
        maxRttTimeoutMs: 2500,
        engine,
      });
      expect(resolution.backends.map((b) => b.host).sort()).toEqual(OPEN);
      expect(resolution.sources.flatMap((s) => s.dropped)).toEqual([]);
    }
    // The same server in a scan is given up as discovery should: floor + retry, not the ceiling.
    const scanned = await scanAll(OPEN, { ports: [50052], maxRttTimeoutMs: 2500 });
    expect(hostsIn(scanned, 'open')).toEqual(['127.0.0.45']);
  });
});
