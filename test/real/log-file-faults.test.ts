// Issue 18: a --log-file whose directory vanished. The directory is removed for real under a
// running watch; the log must come back after a SIGHUP (and, after a failed write, by itself
// within bounded retries), the failure is said once on stderr, and SIGTERM still exits 0.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { describe, expect, it } from 'vitest';

import { configFile } from '../helpers/config.js';
import { ggmlRpcPeer } from '../helpers/ggml-rpc-peer.js';
import { eventually } from '../helpers/net.js';
import { startWatch } from '../helpers/watch.js';

const FAST = ['--sources', 'config', '--interval', '2s', '--health-interval', '200ms', '--timeout', '300'];

/** The log's lines, parsed; none while the file is missing. */
function logMessages(file: string): string[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => (JSON.parse(line) as { msg: string }).msg);
}

async function watchLoggingTo(host: string, extra: string[]) {
  const peer = await ggmlRpcPeer({ generation: '5.x', host });
  const config = configFile([`${host}:${peer.port}`]);
  const dir = mkdtempSync(join(tmpdir(), 'sb-log-dir-'));
  const file = join(dir, 'watch.log');
  const watch = startWatch([...FAST, '--config', config, '--log-file', file, ...extra]);
  expect(await eventually(() => logMessages(file).includes('first resolve done'), 10_000)).toBe(true);
  return { dir, file, watch };
}

/** stderr holds the failure once, then the recovery with the count of lines lost: no trace. */
function expectSaidOnce(stderr: string, file: string, failure: string): void {
  const lines = stderr.split('\n').filter((line) => line !== '');
  expect(lines).toEqual([
    `scan-backends: ${failure}; log lines are lost until it can be opened again (SIGHUP reopens it)`,
    expect.stringMatching(/^scan-backends: writing .* again; \d+ log lines were lost$/),
  ]);
  expect(lines[1]).toContain(file);
}

describe('a log directory that vanished', () => {
  it('rm -rf the directory, SIGHUP, make it again, SIGHUP: the log is written again, the failure said once, SIGTERM exits 0', async () => {
    const { dir, file, watch } = await watchLoggingTo('127.0.182.60', ['--heartbeat', '1s']);
    rmSync(dir, { recursive: true });
    watch.signal('SIGHUP');
    await sleep(1500); // heartbeats with nowhere to go
    mkdirSync(dir);
    watch.signal('SIGHUP');
    await eventually(() => logMessages(file).filter((m) => m === 'heartbeat').length >= 2, 5000);
    const linesAfter = logMessages(file).length;
    watch.signal('SIGTERM');
    const exit = await watch.exited;
    console.log(
      `log directory removed, SIGHUP, made again, SIGHUP: ${linesAfter} lines written after it came back; SIGTERM exit ${exit.code}; stderr ${JSON.stringify(watch.stderr())}`,
    );
    expect(linesAfter).toBeGreaterThanOrEqual(3);
    expect(logMessages(file)).toContain('SIGHUP: reopened the log, re-reading the config and resolving now');
    expect(logMessages(file).at(-1)).toBe('stopped');
    expect(exit).toEqual({ code: 0, signal: null });
    expectSaidOnce(watch.stderr(), file, `cannot reopen ${file}: ENOENT: no such file or directory, open '${file}'`);
  }, 30_000);

  it('a rotation that fails because the directory is gone is retried, and the log comes back by itself once the directory does', async () => {
    const { dir, file, watch } = await watchLoggingTo('127.0.182.61', ['--heartbeat', '1s', '--log-max-size', '1K']);
    expect(await eventually(() => existsSync(`${file}.1`), 10_000)).toBe(true);
    rmSync(dir, { recursive: true });
    // The next rotation (1 KiB is a few heartbeats) cannot rename the file: the write fails.
    await eventually(() => /cannot write/.test(watch.stderr()), 8000);
    mkdirSync(dir);
    // Retries come 1 s, 2 s, 4 s … after the failure: one finds the directory again.
    const cameBack = await eventually(() => logMessages(file).includes('heartbeat'), 10_000);
    watch.signal('SIGTERM');
    const exit = await watch.exited;
    console.log(
      `log directory removed under rotation, made again: log back without SIGHUP ${cameBack}; SIGTERM exit ${exit.code}; stderr ${JSON.stringify(watch.stderr())}`,
    );
    expect(cameBack).toBe(true);
    expect(exit).toEqual({ code: 0, signal: null });
    expectSaidOnce(
      watch.stderr(),
      file,
      `cannot write ${file}: ENOENT: no such file or directory, rename '${file}' -> '${file}.1'`,
    );
  }, 30_000);
});
