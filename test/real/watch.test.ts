// `scan-backends watch` as an operator runs it: real ggml-rpc peers on 127.0.1.x that die and
// come back, a config file edited under it, an --on-change command that restarts a fake
// coordinator, real signals, a real log file, a real AF_UNIX datagram socket for sd_notify.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it, onTestFinished } from 'vitest';

import { CLI, runCli } from '../helpers/cli.js';
import { configFile } from '../helpers/config.js';
import { alive, stopOnFinish } from '../helpers/coordinator.js';
import { ggmlRpcPeer } from '../helpers/ggml-rpc-peer.js';
import { hostilePeer } from '../helpers/hostile.js';
import { countFds, eventually, settledFdCount } from '../helpers/net.js';
import { valid } from '../helpers/schemas.js';
import { notifyReceiver } from '../helpers/notify-receiver.js';
import { isEvent, isLog, startWatch, type LogLine } from '../helpers/watch.js';
import { watchBackends } from '../../lib/watch/watcher.js';
import type { WatchEvent } from '../../lib/watch/types.js';

const FAST = ['--sources', 'config', '--interval', '2s', '--health-interval', '200ms', '--timeout', '300'];
const FAST_PROBE = ['--probe-timeout', '400'];

function workDir(): string {
  return mkdtempSync(join(tmpdir(), 'sb-watch-'));
}

describe('watch follows backends', () => {
  it('down after fail-after checks, up after recover-after, removed with its config line; on-change restarts the coordinator; SIGTERM exits 0', async () => {
    const a = await ggmlRpcPeer({ generation: '5.x', host: '127.0.1.10' });
    let b = await ggmlRpcPeer({ generation: '5.x', host: '127.0.1.11' });
    const bPort = b.port;
    const config = configFile([`127.0.1.10:${a.port}`, `127.0.1.11:${bPort}`]);
    // The fake coordinator: on-change kills the previous one and starts a new one with the list.
    const dir = workDir();
    const script = join(dir, 'restart.sh');
    writeFileSync(
      script,
      [
        'cd "$(dirname "$0")"',
        '[ -f coordinator.pid ] && kill "$(cat coordinator.pid)" 2>/dev/null',
        'cat > view.json',
        'echo "$SCAN_BACKENDS_RPC" >> lists',
        // No --rpc in its argv: other test files resolve the process source in parallel.
        'sleep 600 </dev/null >/dev/null 2>&1 &',
        'echo $! > coordinator.pid',
        'echo $! >> pids',
      ].join('\n'),
    );
    onTestFinished(() => {
      if (existsSync(join(dir, 'coordinator.pid'))) {
        try {
          process.kill(Number(readFileSync(join(dir, 'coordinator.pid'), 'utf8')), 'SIGKILL');
        } catch {
          // gone
        }
      }
    });
    const watch = startWatch([
      ...FAST,
      ...FAST_PROBE,
      '--config',
      config,
      '--fail-after',
      '3',
      '--recover-after',
      '2',
      '--settle',
      '300ms',
      '--on-change',
      `sh ${script}`,
    ]);
    await watch.waitFor('added .10', isEvent('added', '127.0.1.10'));
    const added = await watch.waitFor<WatchEvent>('added .11', isEvent('added', '127.0.1.11'));
    expect(added.backend).toMatchObject({
      state: 'up',
      sources: ['config'],
      verified: true,
      health: 'serving',
      rpc: { protocol: '5.0.0' },
    });
    await watch.waitFor('the first on-change', isLog('on-change: done'));
    const lists = () => readFileSync(join(dir, 'lists'), 'utf8').trim().split('\n');
    expect(lists()).toEqual([`127.0.1.10:${a.port},127.0.1.11:${bPort}`]);
    const view = JSON.parse(readFileSync(join(dir, 'view.json'), 'utf8')) as { schema: number; rpc: string };
    expect(view).toMatchObject({ schema: 1, rpc: `127.0.1.10:${a.port},127.0.1.11:${bPort}` });

    await b.close();
    const down = await watch.waitFor<WatchEvent>('down .11', isEvent('down', '127.0.1.11'));
    expect(down.backend).toMatchObject({ state: 'down', failures: 3, flaps: 1 });
    expect(down.cause.saw).toMatch(/closed \(connection refused\)|scan|no answer/);
    // The coordinator was restarted: the first one is gone, the second runs (the script notes
    // the list first and the new pid last: wait for the pid).
    const pids = () => readFileSync(join(dir, 'pids'), 'utf8').trim().split('\n').map(Number);
    expect(await eventually(() => pids().length === 2, 5000)).toBe(true);
    expect(lists()[1]).toBe(`127.0.1.10:${a.port}`);
    expect(alive(pids()[0] as number)).toBe(false);
    expect(alive(pids()[1] as number)).toBe(true);

    b = await ggmlRpcPeer({ generation: '5.x', host: '127.0.1.11', port: bPort });
    const up = await watch.waitFor<WatchEvent>('up .11', isEvent('up', '127.0.1.11', down.id));
    expect(up.backend).toMatchObject({ state: 'up', successes: 2, flaps: 1 });
    // Exactly one down: the failed checks after the third made no more events.
    expect(watch.events.filter((e) => e.backend.host === '127.0.1.11' && e.type === 'down')).toHaveLength(1);
    await eventually(() => lists().length === 3, 5000);

    // A removed config line: the backend leaves at the next resolve (the edit wakes it).
    writeFileSync(config, `127.0.1.10:${a.port}\n`);
    const removed = await watch.waitFor<WatchEvent>('removed .11', isEvent('removed', '127.0.1.11'));
    expect(removed.cause.saw).toMatch(/no source names it any more \(config\)/);
    await eventually(() => lists().length === 4, 5000);
    expect(lists()[3]).toBe(`127.0.1.10:${a.port}`);

    // Ids are monotonic and every event is schema 1, as schemas/watch-event.schema.json says.
    for (const e of watch.events) expect(valid('watch-event', e)).toBe('valid');
    expect(watch.events.map((e) => e.id)).toEqual(watch.events.map((_, i) => i + 1));
    expect(watch.events.every((e) => e.schema === 1 && typeof e.time === 'string')).toBe(true);

    watch.signal('SIGTERM');
    const exit = await watch.exited;
    expect(exit).toEqual({ code: 0, signal: null });
    const last = watch.logs.at(-1) as LogLine;
    expect(last.msg).toBe('stopped');
    expect(watch.logs.some((l) => l.msg === 'stopping' && l.reason === 'terminated')).toBe(true);
  });

  it('a bad config edit keeps the last good list and says file:line: token once; SIGHUP re-reads it', async () => {
    const a = await ggmlRpcPeer({ generation: '5.x', host: '127.0.1.20' });
    const b = await ggmlRpcPeer({ generation: '5.x', host: '127.0.1.21' });
    const config = configFile([`127.0.1.20:${a.port}`]);
    const watch = startWatch([...FAST, '--interval', '1h', '--config', config]);
    await watch.waitFor('added .20', isEvent('added', '127.0.1.20'));
    // A half-written edit: the good new line is not taken while the file has a bad one.
    writeFileSync(config, `127.0.1.20:${a.port}\n127.0.1.21:${b.port}\n127.0.1.22:port\n`);
    const bad = await watch.waitFor<LogLine>('the bad line', isLog('config: bad line'));
    expect(bad.line).toBe(`${config}:3: bad token "127.0.1.22:port" (port must be 1..65535)`);
    await watch.waitFor('keeping', isLog(/keeping the last good version/));
    watch.signal('SIGHUP');
    await watch.waitFor('SIGHUP handled', isLog(/^SIGHUP/));
    await new Promise((r) => setTimeout(r, 500));
    expect(watch.events.filter((e) => e.backend.host === '127.0.1.21')).toEqual([]);
    expect(watch.logs.filter((l) => l.msg === 'config: bad line')).toHaveLength(1);
    // Fixed: the new backend is added, nothing else moves.
    writeFileSync(config, `127.0.1.20:${a.port}\n127.0.1.21:${b.port}\n`);
    await watch.waitFor('added .21', isEvent('added', '127.0.1.21'));
    await watch.waitFor('good again', isLog('config file good again'));
    expect(watch.events.filter((e) => e.backend.host === '127.0.1.20').map((e) => e.type)).toEqual(['added']);
    watch.signal('SIGINT');
    expect((await watch.exited).code).toBe(0);
  });

  it('--until stops it like SIGTERM; a second SIGTERM exits at once', async () => {
    const a = await ggmlRpcPeer({ generation: '5.x', host: '127.0.1.30' });
    const config = configFile([`127.0.1.30:${a.port}`]);
    const until = new Date(Date.now() + 2500).toISOString();
    const watch = startWatch([...FAST, '--config', config, '--until', until]);
    await watch.waitFor('added', isEvent('added', '127.0.1.30'));
    expect(await watch.exited).toEqual({ code: 0, signal: null });
    expect(watch.logs.find((l) => l.msg === 'stopping')?.reason).toBe(`--until ${until} reached`);
    expect(watch.logs.at(-1)?.msg).toBe('stopped');

    // An --on-change command that ignores SIGTERM holds the shutdown; the second signal ends it.
    const dir = workDir();
    const stubborn = startWatch([
      ...FAST,
      '--config',
      config,
      '--settle',
      '0',
      '--on-change-shell',
      '--on-change',
      `trap '' TERM; echo started > ${dir}/started; sleep 30`,
    ]);
    await eventually(() => existsSync(join(dir, 'started')), 10_000);
    stubborn.signal('SIGTERM');
    await stubborn.waitFor('stopping', isLog('stopping'));
    stubborn.signal('SIGTERM');
    const exit = await stubborn.exited;
    expect(exit.code).toBe(143);
  }, 30_000);

  it('--log-file rotates at a tiny size, keeps --log-files, and SIGHUP reopens it', async () => {
    const a = await ggmlRpcPeer({ generation: '5.x', host: '127.0.1.40' });
    const config = configFile([`127.0.1.40:${a.port}`]);
    const dir = workDir();
    const file = join(dir, 'watch.log');
    const watch = startWatch([
      ...FAST,
      '--config',
      config,
      '--log-file',
      file,
      '--log-max-size',
      '1K',
      '--log-files',
      '2',
      '--heartbeat',
      '1s',
    ]);
    await watch.waitFor('added', isEvent('added', '127.0.1.40'));
    // Heartbeats every second fill 1 KiB within a few seconds.
    await eventually(() => existsSync(`${file}.2`), 15_000);
    const names = readdirSync(dir).sort();
    expect(names.every((n) => ['watch.log', 'watch.log.1', 'watch.log.2'].includes(n))).toBe(true);
    for (const name of names) {
      const text = readFileSync(join(dir, name), 'utf8');
      expect(text.length).toBeLessThanOrEqual(1024);
      for (const line of text.trim().split('\n')) expect(JSON.parse(line)).toHaveProperty('msg');
    }
    const heartbeat = readFileSync(file, 'utf8') + readFileSync(`${file}.1`, 'utf8');
    expect(heartbeat).toMatch(/"msg":"heartbeat"/);
    expect(heartbeat).toMatch(/"uptimeS":\d+,"cycles":\d+,"healthRounds":\d+,"up":1,"down":0/);
    // stdout carries only events when logs go to a file.
    expect(watch.logs).toEqual([]);
    // logrotate moved the file away: SIGHUP starts a new one at the path.
    const { renameSync } = await import('node:fs');
    renameSync(file, `${file}.moved`);
    watch.signal('SIGHUP');
    await eventually(() => existsSync(file) && /SIGHUP/.test(readFileSync(file, 'utf8')), 5000);
    watch.signal('SIGTERM');
    expect((await watch.exited).code).toBe(0);
    expect(readFileSync(file, 'utf8')).toMatch(/"msg":"stopped"/);
  }, 40_000);

  it('speaks systemd notify on a real datagram socket: READY=1 after the first resolve, STATUS, WATCHDOG=1, STOPPING=1', async () => {
    const a = await ggmlRpcPeer({ generation: '5.x', host: '127.0.1.50' });
    const config = configFile([`127.0.1.50:${a.port}`]);
    const dir = workDir();
    const { socket, received } = await notifyReceiver(dir);
    const watch = startWatch([...FAST, '--config', config], {
      NOTIFY_SOCKET: socket,
      WATCHDOG_USEC: '600000',
      WATCHDOG_PID: '',
    });
    await watch.waitFor('added', isEvent('added', '127.0.1.50'));
    await eventually(() => received().includes('READY=1') && received().split('WATCHDOG=1').length > 3, 5000);
    const datagrams = received()
      .trim()
      .split('\n')
      .slice(1)
      .map((line) => line.slice(1, -1));
    const ready = datagrams.find((d) => d.startsWith('READY=1'));
    expect(ready).toBe(`READY=1\\nSTATUS=1 up, 0 down; usable: 127.0.1.50:${a.port}`);
    watch.signal('SIGTERM');
    expect((await watch.exited).code).toBe(0);
    await eventually(() => received().includes('STOPPING=1'), 2000);
    expect(received().indexOf('STOPPING=1')).toBeGreaterThan(received().indexOf('READY=1'));
  });

  it('a reader that goes away (watch | head -1) stops it cleanly, without a word on stderr', async () => {
    const a = await ggmlRpcPeer({ generation: '5.x', host: '127.0.1.31' });
    const config = configFile([`127.0.1.31:${a.port}`]);
    // The shell waits for both sides of the pipe: head takes one line and exits, and the
    // watcher stops at its next write (a heartbeat a second), which meets EPIPE.
    const child = spawn(
      'sh',
      [
        '-c',
        `"$0" "$1" watch --sources config --config "$2" --format ndjson --heartbeat 1s | head -1`,
        process.execPath,
        CLI,
        config,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
    );
    stopOnFinish(child); // the pipeline's process group, should it not end by itself
    let [stdout, stderr] = ['', ''];
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    const run = { code, stdout, stderr };
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ msg: 'watch started' });
    expect(run.stderr).toBe('');
  });

  it('options out of range are usage errors naming the flag', async () => {
    const cases = [
      [['--interval', '5x'], /--interval: expected a duration/],
      [['--health-interval', '1ms'], /--health-interval: must be 10ms\.\.1d, got 1ms/],
      [['--fail-after', '0'], /--fail-after: must be an integer 1\.\./],
      [['--recover-after', 'two'], /--recover-after: expected a whole number/],
      [['--log-max-size', '10'], /--log-max-size: must be an integer 1024\.\./],
      [['--until', 'tomorrow'], /--until: expected an ISO 8601 time/],
      [['--until', '2001-01-01T00:00:00Z'], /--until: 2001-01-01T00:00:00.000Z has already passed/],
      [['--on-change', 'a "b'], /--on-change: unclosed " quote/],
      [['--on-change-shell'], /--on-change-shell: needs --on-change CMD/],
      [['--log-file', '/nonexistent/dir/x.log'], /--log-file: ENOENT/],
      [['--format', 'table'], /--format: expected text, ndjson/],
    ] as const;
    // All at once: each is a whole Node start, slow under the sanitizer run.
    const runs = await Promise.all(cases.map(([args]) => runCli(['watch', ...args])));
    cases.forEach(([args, message], i) => {
      const run = runs[i] as Awaited<ReturnType<typeof runCli>>;
      expect(run.code, args.join(' ')).toBe(2);
      expect(run.stderr).toMatch(message);
      expect(run.stdout).toBe('');
    });
  }, 60_000);
});

describe('watchBackends, the library API', () => {
  it('iterates events, answers snapshot() and eventsSince(), and closes with every descriptor back', async () => {
    const a = await ggmlRpcPeer({ generation: '5.x', host: '127.0.1.60' });
    const config = configFile([`127.0.1.60:${a.port}`, '127.0.1.61:1']);
    const fdsBefore = countFds();
    const watcher = watchBackends({
      sources: ['config'],
      configPath: config,
      intervalMs: 60_000,
      healthIntervalMs: 200,
      failAfter: 2,
      timeoutMs: 300,
      probeTimeoutMs: 400,
    });
    const events = watcher[Symbol.asyncIterator]();
    await watcher.ready;
    const snapshot = watcher.snapshot();
    expect(snapshot).toMatchObject({
      schema: 1,
      watcher: { ready: true, cycles: 1 },
      rpc: `127.0.1.60:${a.port}`,
      backends: [{ host: '127.0.1.60', state: 'up', health: 'serving', sources: ['config'] }],
    });
    // The port that refused was named but never proved: it is not a backend.
    expect(snapshot.backends).toHaveLength(1);
    expect((await events.next()).value).toMatchObject({ id: 1, type: 'added' });
    await a.close();
    expect((await events.next()).value).toMatchObject({ id: 2, type: 'down', cause: { check: 'health' } });
    expect(watcher.eventsSince(0)?.map((e) => e.type)).toEqual(['added', 'down']);
    expect(watcher.eventsSince(1)?.map((e) => e.id)).toEqual([2]);
    expect(watcher.snapshot().rpc).toBe('');
    await watcher.close();
    expect(await events.next()).toEqual({ value: undefined, done: true });
    expect(await settledFdCount(fdsBefore)).toBe(fdsBefore);
  });

  it('rejects options out of range with the option named', () => {
    expect(() => watchBackends({ failAfter: 0 })).toThrow(/failAfter: must be an integer 1\.\.1000, got 0/);
    expect(() => watchBackends({ healthIntervalMs: 5 })).toThrow(/healthIntervalMs/);
    expect(() => watchBackends({ freeMemoryFraction: 2 })).toThrow(/freeMemoryFraction/);
    expect(() => watchBackends({ timeoutMs: -1 })).toThrow(/timeoutMs/);
  });

  it('a port that accepts and never answers is never a backend, and a watch with one keeps running', async () => {
    const a = await ggmlRpcPeer({ generation: '5.x', host: '127.0.1.62' });
    const sink = await hostilePeer('sink', '127.0.1.63');
    const watcher = watchBackends({
      sources: ['config'],
      configPath: configFile([`127.0.1.62:${a.port}`, `127.0.1.63:${sink}`]),
      intervalMs: 300,
      healthIntervalMs: 100,
      timeoutMs: 300,
      probeTimeoutMs: 300,
    });
    onTestFinished(() => watcher.close());
    await watcher.ready;
    // Several resolves: the silent port is dropped each time (a guess nothing vouches for).
    expect(await eventually(() => watcher.snapshot().watcher.cycles >= 4, 10_000)).toBe(true);
    expect(watcher.snapshot().backends.map((b) => b.host)).toEqual(['127.0.1.62']);
    expect((watcher.eventsSince(0) as WatchEvent[] | null)?.map((e) => [e.type, e.backend.host])).toEqual([
      ['added', '127.0.1.62'],
    ]);
    expect(watcher.snapshot().watcher.lastError).toBeUndefined();
  });
});
