// Scans in parent and child processes stay apart: no descriptor crosses an exec, and killing a
// child mid-scan leaves the parent's scan correct.
import { execFileSync, fork } from 'node:child_process';
import { readdirSync, readlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { scan, scanAll } from '../../lib/scan/job.js';
import { assertBuilt } from '../helpers/cli.js';
import { countFds, eventually, listen } from '../helpers/net.js';
import { clearFirewall, dropAllBut, enterIsolatedNamespace } from '../helpers/netns.js';

const CLUSTER_SCRIPT = fileURLToPath(new URL('../helpers/cluster-scan.mjs', import.meta.url));

/** The inodes of the sockets a process holds, from /proc/<pid>/fd. */
function socketInodes(pid: string): Set<string> {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (match) inodes.add(match[1] as string);
    } catch {
      // closed while we looked
    }
  }
  return inodes;
}

function expectSeedStates(results: { host: string; state: string }[]): void {
  expect(results.filter((r) => r.state === 'open').map((r) => r.host)).toEqual(['127.0.0.45']);
  expect(results.filter((r) => r.state === 'filtered')).toHaveLength(253);
}

describe('fork and cluster', () => {
  beforeAll(() => {
    enterIsolatedNamespace();
    dropAllBut(50052, ['127.0.0.45']);
  });
  afterAll(() => clearFirewall());

  it('a child process started mid-scan inherits none of the scan sockets (close-on-exec)', async () => {
    await listen('127.0.0.45', 50052);
    const before = socketInodes('self');
    const iterator = scan('127.0.0.0/24', { engine: 'native', timeoutMs: 1500 })[Symbol.asyncIterator]();
    try {
      const first = await iterator.next(); // the scan is running: .45 answers at once
      expect(first.value).toMatchObject({ host: '127.0.0.45', state: 'open' });
      // The scan launches in bursts: wait until most of the /24 is in flight.
      const scanSockets = () => [...socketInodes('self')].filter((inode) => !before.has(inode));
      expect(await eventually(() => scanSockets().length > 200)).toBe(true);
      const held = scanSockets();
      const child = execFileSync('sh', ['-c', 'ls -l /proc/self/fd'], { encoding: 'utf8' });
      const inherited = held.filter((inode) => child.includes(`socket:[${inode}]`));
      expect(inherited).toEqual([]);
    } finally {
      await iterator.return?.();
    }
  });

  it('killing a forked child mid-scan leaves the parent scan correct', async () => {
    assertBuilt();
    await listen('127.0.0.45', 50052);
    const before = countFds();
    const mine = scanAll('127.0.0.0/24', { engine: 'native', timeoutMs: 1500 });
    const child = fork(
      fileURLToPath(new URL('../../dist/cli.js', import.meta.url)),
      ['scan', '127.0.0.0/24', '--engine', 'native', '--timeout', '10000', '--format', 'json'],
      { stdio: 'ignore' },
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    child.kill('SIGKILL');
    const report = await mine;
    expect(report.engine).toBe('native');
    expectSeedStates(report.results);
    expect(countFds()).toBe(before);
  });

  it('a cluster primary and worker scan at once; killing the worker leaves the primary correct', async () => {
    assertBuilt();
    await listen('127.0.0.45', 50052);
    const out = execFileSync(process.execPath, [CLUSTER_SCRIPT], { encoding: 'utf8', timeout: 15_000 });
    const { workerSignal, report } = JSON.parse(out);
    expect(workerSignal).toBe('SIGKILL');
    expectSeedStates(report.results);
  });
});

// A full collection before each reading, so RSS compares what is live rather than where V8
// happened to be in its collection cycle.
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

describe('1,000 scans started and aborted in a loop', () => {
  beforeAll(() => {
    enterIsolatedNamespace();
    dropAllBut(50052, []);
  });
  afterAll(() => clearFirewall());

  for (const engine of ['native', 'js'] as const) {
    it(`${engine}: descriptors come back every time and memory stays flat`, async () => {
      const round = async () => {
        const controller = new AbortController();
        const job = scanAll('127.0.0.0/28', { engine, timeoutMs: 10_000, signal: controller.signal });
        setImmediate(() => controller.abort());
        await expect(job).rejects.toMatchObject({ name: 'AbortError' });
      };
      for (let i = 0; i < 100; i++) await round(); // warm up allocators and JIT
      collectGarbage();
      const fds = countFds();
      const rssBefore = process.memoryUsage.rss();
      for (let i = 0; i < 900; i++) await round();
      collectGarbage();
      const grownMiB = (process.memoryUsage.rss() - rssBefore) / 2 ** 20;
      console.log(
        `${engine}: 1,000 start/abort rounds: fds ${fds} -> ${countFds()}, RSS +${grownMiB.toFixed(1)} MiB over the last 900`,
      );
      expect(countFds()).toBe(fds);
      // AddressSanitizer keeps freed memory in quarantine (256 MiB by default), so RSS says
      // nothing about leaks under npm run test:asan; descriptors still must come back.
      if (!(process.env.LD_PRELOAD ?? '').includes('libasan')) expect(grownMiB).toBeLessThan(32);
    }, 120_000);
  }
});
