// --on-change with real processes: debounced, never two at once, no shell unless asked, a
// time limit that ends the command's whole process group, failures logged with stderr's tail;
// a run ends when its command exits, and the coordinator it started (keeping our stderr pipe,
// even in a session of its own) is left running (issue 18).
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it, onTestFinished } from 'vitest';

import { OnChangeRunner } from '../../lib/daemon/on-change.js';
import { configFile } from '../helpers/config.js';
import { alive } from '../helpers/coordinator.js';
import { ggmlRpcPeer } from '../helpers/ggml-rpc-peer.js';
import { eventually } from '../helpers/net.js';
import { isLog, startWatch, type LogLine } from '../helpers/watch.js';

type Logged = { level: string; msg: string; fields: Record<string, unknown> };

function runner(argv: string[], options: { settleMs?: number; timeoutMs?: number } = {}) {
  const logged: Logged[] = [];
  const r = new OnChangeRunner({
    argv,
    settleMs: options.settleMs ?? 200,
    timeoutMs: options.timeoutMs ?? 10_000,
    log: (level, msg, fields) => logged.push({ level, msg, fields }),
  });
  return { r, logged, done: () => logged.filter((l) => /^on-change: (done|failed)$/.test(l.msg)) };
}

/** The pids a command wrote to `file`, one a line; each is SIGKILLed when the test finishes. */
function straysIn(file: string): () => number[] {
  const pids = () =>
    existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map(Number) : [];
  onTestFinished(() => {
    for (const pid of pids()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
  return pids;
}

describe('--on-change', () => {
  it('runs once for a burst of changes, with the last list, and never two at once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-onchange-'));
    // Each run notes its start and end; a second run started during the first would interleave.
    const script = `echo "start $SCAN_BACKENDS_RPC" >> ${dir}/log; sleep 0.5; echo end >> ${dir}/log`;
    const { r, done } = runner(['sh', '-c', script], { settleMs: 200 });
    for (let i = 0; i < 10; i++) r.update(i % 2 ? 'a:1' : 'a:1,b:2', `{"i":${i}}`);
    expect(await eventually(() => done().length === 1, 5000)).toBe(true);
    expect(readFileSync(join(dir, 'log'), 'utf8')).toBe('start a:1\nend\n');
    // A change while it runs waits for the end; the same list again runs nothing.
    r.update('a:1,b:2', '{}');
    await eventually(
      () => existsSync(join(dir, 'log')) && readFileSync(join(dir, 'log'), 'utf8').includes('b:2'),
      5000,
    );
    r.update('c:3', '{}');
    expect(await eventually(() => done().length === 3, 5000)).toBe(true);
    r.update('c:3', '{}');
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(done()).toHaveLength(3);
    expect(readFileSync(join(dir, 'log'), 'utf8')).toBe('start a:1\nend\nstart a:1,b:2\nend\nstart c:3\nend\n');
    expect(r.runs).toBe(3);
  });

  it('passes its argv as given: no shell, nothing expanded; the view on stdin', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-onchange-'));
    const out = join(dir, 'argv');
    const { r, done } = runner(
      [
        'node',
        '-e',
        `require('fs').writeFileSync(process.argv[1], JSON.stringify([process.argv.slice(2), require('fs').readFileSync(0, 'utf8')]))`,
        out,
        '$HOME',
        '; rm -rf /',
        '`id`',
      ],
      { settleMs: 0 },
    );
    r.update('10.0.0.7:50052', '{"schema":1}\n');
    expect(await eventually(() => done().length === 1, 5000)).toBe(true);
    expect(JSON.parse(readFileSync(out, 'utf8'))).toEqual([['$HOME', '; rm -rf /', '`id`'], '{"schema":1}\n']);
  });

  it('a command past its time limit is stopped with its process group; a failure is logged with the end of its stderr', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-onchange-'));
    // The shell starts a child of its own: the time limit must end it too.
    const hung = runner(['sh', '-c', `sleep 30 & echo $! > ${dir}/child; wait`], { settleMs: 0, timeoutMs: 500 });
    hung.r.update('a:1', '{}');
    expect(await eventually(() => hung.done().length === 1, 8000)).toBe(true);
    expect(hung.done()[0]).toMatchObject({
      level: 'error',
      msg: 'on-change: failed',
      fields: { signal: 'SIGTERM', timedOut: true },
    });
    expect(hung.logged.some((l) => l.msg === 'on-change: time limit reached; stopping it')).toBe(true);
    const child = Number(readFileSync(join(dir, 'child'), 'utf8'));
    expect(
      await eventually(
        () => !existsSync(`/proc/${child}`) || /\) Z/.test(readFileSync(`/proc/${child}/stat`, 'utf8')),
        5000,
      ),
    ).toBe(true);

    const failing = runner(
      ['sh', '-c', `echo first >&2; head -c 5000 /dev/zero | tr '\\0' x >&2; echo; echo "the real error" >&2; exit 3`],
      { settleMs: 0 },
    );
    failing.r.update('a:1', '{}');
    expect(await eventually(() => failing.done().length === 1, 5000)).toBe(true);
    const failed = failing.done()[0] as Logged;
    expect(failed).toMatchObject({ level: 'error', fields: { exitCode: 3 } });
    expect(String(failed.fields.stderrTail)).toMatch(/the real error$/);
    expect(String(failed.fields.stderrTail).length).toBeLessThanOrEqual(2048);

    const missing = runner(['/nonexistent/restart-llama'], { settleMs: 0 });
    missing.r.update('a:1', '{}');
    expect(await eventually(() => missing.done().length === 1, 5000)).toBe(true);
    expect(missing.done()[0]).toMatchObject({ level: 'error', fields: { error: expect.stringMatching(/ENOENT/) } });
  });

  it('after close no new run starts, and a run in flight is stopped past the grace', async () => {
    const { r, logged, done } = runner(['sh', '-c', 'trap "" TERM; sleep 30'], { settleMs: 0 });
    r.update('a:1', '{}');
    expect(await eventually(() => logged.some((l) => l.msg === 'on-change: running'), 5000)).toBe(true);
    await r.close(300);
    expect(done()).toHaveLength(1);
    expect(done()[0]?.fields.signal).toBe('SIGKILL');
    r.update('b:2', '{}');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(r.runs).toBe(1);
  }, 15_000);

  it('a run ends when its command exits: the coordinator it started keeps our stderr and is left running', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-onchange-'));
    const pids = straysIn(join(dir, 'pids'));
    // The stand-in coordinator keeps the stderr pipe, writes to it after the run, and lives on.
    const script = `{ sleep 1; echo coordinator log line >&2; exec sleep 300; } & echo $! >> ${dir}/pids; echo restarted >&2`;
    const { r, logged, done } = runner(['sh', '-c', script], { settleMs: 0, timeoutMs: 2000 });
    r.update('a:1', '{}');
    expect(await eventually(() => done().length === 1, 5000)).toBe(true);
    const run = done()[0] as Logged;
    expect(run).toMatchObject({
      level: 'info',
      msg: 'on-change: done',
      fields: { exitCode: 0, stderrTail: 'restarted', stderrLeftOpen: true },
    });
    expect(run.fields.timedOut).toBeUndefined();
    expect(run.fields.elapsedMs).toBeLessThan(1000);
    // Past the late write and past the time limit: nothing stopped it, nothing was logged.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect(pids()).toHaveLength(1);
    expect(alive(pids()[0] as number)).toBe(true);
    expect(logged.filter((l) => l.level !== 'info')).toEqual([]);
  }, 15_000);

  it('watch: a coordinator started with setsid holds neither the run, the next change nor SIGTERM', async () => {
    const a = await ggmlRpcPeer({ generation: '5.x', host: '127.0.183.10' });
    const b = await ggmlRpcPeer({ generation: '5.x', host: '127.0.183.11' });
    const config = configFile([`127.0.183.10:${a.port}`]);
    const dir = mkdtempSync(join(tmpdir(), 'sb-onchange-'));
    const pids = straysIn(join(dir, 'pids'));
    const watch = startWatch([
      '--sources',
      'config',
      '--interval',
      '30s',
      '--health-interval',
      '200ms',
      '--config',
      config,
      '--settle',
      '0',
      '--on-change-shell',
      '--on-change',
      // Its own session: out of reach of the command's process group, with our stderr pipe.
      `setsid sleep 300 & echo $! >> ${dir}/pids; echo "$SCAN_BACKENDS_RPC" >> ${dir}/lists`,
    ]);
    const first = await watch.waitFor<LogLine>('the first run to end', isLog(/^on-change: (done|failed)$/), 5000);
    expect(first).toMatchObject({ msg: 'on-change: done', exitCode: 0, stderrLeftOpen: true });
    expect(first.elapsedMs).toBeLessThan(1000);

    // The next change runs at once, and the first coordinator still runs beside the second.
    writeFileSync(config, `127.0.183.10:${a.port}\n127.0.183.11:${b.port}\n`);
    const runsEnded = () => watch.logs.filter(isLog(/^on-change: (done|failed)$/));
    expect(await eventually(() => runsEnded().length === 2, 5000)).toBe(true);
    expect(runsEnded()[1]).toMatchObject({ msg: 'on-change: done', exitCode: 0 });
    expect(readFileSync(join(dir, 'lists'), 'utf8')).toBe(
      `127.0.183.10:${a.port}\n127.0.183.10:${a.port},127.0.183.11:${b.port}\n`,
    );
    expect(pids()).toHaveLength(2);
    expect(pids().every(alive)).toBe(true);

    const stopping = performance.now();
    watch.signal('SIGTERM');
    expect(await watch.exited).toEqual({ code: 0, signal: null });
    expect(performance.now() - stopping).toBeLessThan(3000);
    expect(watch.logs.at(-1)).toMatchObject({ msg: 'stopped', onChangeRuns: 2 });
    expect(pids().every(alive)).toBe(true);
  }, 30_000);
});
