// The addon where Node programs put it: worker threads, terminated workers, exiting processes.
import { spawnSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { assertBuilt } from '../helpers/cli.js';
import { countFds, listen } from '../helpers/net.js';
import { clearFirewall, dropAllBut, enterIsolatedNamespace } from '../helpers/netns.js';

const WORKER = new URL('../helpers/scan-worker.mjs', import.meta.url);

interface Report {
  engine: string;
  results: { host: string; state: string }[];
}

function startWorker(
  targets: string,
  options: object,
): { worker: Worker; started: Promise<void>; report: Promise<Report> } {
  assertBuilt();
  const worker = new Worker(WORKER, { workerData: { targets, options } });
  const started = new Promise<void>((resolve) => worker.on('message', (m) => m.type === 'started' && resolve()));
  const report = new Promise<Report>((resolve, reject) => {
    worker.on('message', (m) => m.type === 'report' && resolve(m.report));
    worker.on('error', reject);
  });
  return { worker, started, report };
}

describe('native addon lifecycle', () => {
  beforeAll(() => {
    enterIsolatedNamespace();
    dropAllBut(50052, ['127.0.0.45', '127.0.0.48']);
  });
  afterAll(() => clearFirewall());

  it('loads in two worker threads that scan at once, both correct', async () => {
    await listen('127.0.0.45', 50052);
    await listen('127.0.0.48', 50052);
    const options = { engine: 'native', timeoutMs: 300 };
    const a = startWorker('127.0.0.40-49', options);
    const b = startWorker('127.0.0.44-48', options);
    const [ra, rb] = await Promise.all([a.report, b.report]);
    await Promise.all([a.worker.terminate(), b.worker.terminate()]);
    const open = (r: Report) => r.results.filter((x) => x.state === 'open').map((x) => x.host);
    expect(ra.engine).toBe('native');
    expect(open(ra)).toEqual(['127.0.0.45', '127.0.0.48']);
    expect(open(rb)).toEqual(['127.0.0.45', '127.0.0.48']);
    expect(ra.results).toHaveLength(10);
  });

  it('a worker terminated mid-scan frees its sockets and threads (env cleanup hook)', async () => {
    const before = countFds();
    const { worker, started } = startWorker('127.0.0.0/24', { engine: 'native', timeoutMs: 10_000 });
    await started;
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(countFds()).toBeGreaterThan(before + 200); // the scan's sockets are in flight
    await worker.terminate();
    expect(countFds()).toBe(before);
  });

  it('a process that exits with a scan in flight exits at once with its own code', () => {
    assertBuilt();
    const script = `import(${JSON.stringify(new URL('../../dist/index.js', import.meta.url).href)}).then((m) => {
      m.scanAll('127.0.0.0/24', { engine: 'native', timeoutMs: 10000 }).catch(() => {});
      setTimeout(() => process.exit(7), 200);
    });`;
    const started = performance.now();
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 8000,
    });
    expect(child.status).toBe(7);
    expect(child.signal).toBeNull();
    expect(child.stderr).toBe('');
    expect(performance.now() - started).toBeLessThan(8000);
  });
});
