// Issue 18: a stdout nobody reads. watch and serve write to a FIFO the test opened and filled,
// and never reads until it chooses to, while 40 real ggml-rpc peers on 127.0.182.x (half of
// them going away and coming back) make events. The daemon must keep checking and answering
// /healthz, drop and count what the reader cannot take, say so once it drains, and stop
// within its documented 10 s on SIGTERM.
import { execFileSync } from 'node:child_process';
import { closeSync, constants, existsSync, mkdtempSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { describe, expect, it, onTestFinished } from 'vitest';

import { startGgmlRpcPeer, type GgmlRpcPeer } from '../../lib/demo/ggml-rpc-peer.js';
import { configFile } from '../helpers/config.js';
import { get } from '../helpers/http.js';
import { eventually } from '../helpers/net.js';
import { startWatch, type LogLine, type WatchProcess } from '../helpers/watch.js';

const FLAPPING = [
  '--sources',
  'config',
  '--interval',
  '2s',
  '--health-interval',
  '100ms',
  '--fail-after',
  '1',
  '--recover-after',
  '1',
  '--timeout',
  '300',
  '--probe-timeout',
  '400',
  '--heartbeat',
  '1s',
];
const DRAINED = 'stdout: its reader stalled; lines were dropped';

/**
 * A FIFO opened read-write and non-blocking by the test (so the daemon's writes never meet
 * EPIPE). `fill()` makes it a reader that stopped reading: the pipe full of blank lines;
 * `readLines` reads as a reader that keeps up, until a pattern or a deadline.
 */
function stdoutFifo(): {
  fd: number;
  fill: () => void;
  readLines: (until: RegExp, timeoutMs: number) => Promise<string[]>;
} {
  const path = join(mkdtempSync(join(tmpdir(), 'sb-fifo-')), 'stdout');
  execFileSync('mkfifo', [path]);
  const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
  onTestFinished(() => closeSync(fd));
  // Blank lines: the reader skips them. A pipe holds 64 KiB by default, 1 MiB at most.
  const fill = () => {
    const padding = Buffer.alloc(64 * 1024, '\n');
    for (let i = 0; i < 32; i++) {
      try {
        writeSync(fd, padding);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EAGAIN') return;
        throw error;
      }
    }
    throw new Error('the FIFO took 2 MiB without filling');
  };
  let text = '';
  const readLines = async (until: RegExp, timeoutMs: number) => {
    const buffer = Buffer.alloc(64 * 1024);
    const deadline = performance.now() + timeoutMs;
    while (!until.test(text) && performance.now() < deadline) {
      try {
        text += buffer.toString('utf8', 0, readSync(fd, buffer));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
        await sleep(50);
      }
    }
    return text.split('\n').filter((line) => line !== '');
  };
  return { fd, fill, readLines };
}

/**
 * `count` peers on 127.0.182.(10+i) in one config file; of the first 40, every second one
 * closes and listens again on its port every 200 ms until the test ends (at most 300 rounds).
 */
async function flappingPeers(count: number): Promise<{ config: string; steady: GgmlRpcPeer[] }> {
  // 16 devices each make every event line some 2 KiB.
  const devices = Array.from({ length: 16 }, () => ({ freeBytes: 8 * 1024 ** 3, totalBytes: 16 * 1024 ** 3 }));
  const start = (i: number, port?: number) =>
    startGgmlRpcPeer({ generation: '5.x', host: `127.0.182.${10 + i}`, port, devices });
  const peers = await Promise.all(Array.from({ length: count }, (_, i) => start(i)));
  const config = configFile(peers.map((p, i) => `127.0.182.${10 + i}:${p.port}`));
  const flapping = (i: number) => i < 40 && i % 2 === 1;
  let running = true;
  const flaps = peers.map(async (first, i) => {
    if (!flapping(i)) return;
    let peer: GgmlRpcPeer | undefined = first;
    for (let round = 0; round < 300 && running; round++) {
      await sleep(200);
      if (peer) {
        await peer.close();
        peer = undefined;
      } else peer = await start(i, first.port);
    }
    await peer?.close();
  });
  onTestFinished(async () => {
    running = false;
    await Promise.all(flaps);
    await Promise.all(peers.filter((_, i) => !flapping(i)).map((p) => p.close()));
  });
  return { config, steady: peers.filter((_, i) => !flapping(i)) };
}

/** SIGTERM to exit, in ms; SIGKILL after 15 s (the figure is then 15 000 or more). */
async function timeToExit(daemon: WatchProcess): Promise<{ ms: number; code: number | null }> {
  const start = performance.now();
  daemon.signal('SIGTERM');
  const exit = await Promise.race([daemon.exited, sleep(15_000).then(() => undefined)]);
  const ms = Math.round(performance.now() - start);
  if (exit) return { ms, code: exit.code };
  daemon.signal('SIGKILL');
  await daemon.exited;
  return { ms, code: null };
}

const connections = (peers: GgmlRpcPeer[]) => peers.reduce((sum, p) => sum + p.connections, 0);

describe('a stdout nobody reads', () => {
  it('serve answers /healthz while its stdout FIFO is full and 40 backends flap, and SIGTERM ends it within 10 s', async () => {
    const { config } = await flappingPeers(40);
    const fifo = stdoutFifo();
    fifo.fill();
    const log = join(mkdtempSync(join(tmpdir(), 'sb-serve-log-')), 'serve.log');
    const serve = startWatch(
      [...FLAPPING, '--config', config, '--listen', '127.0.182.1:0', '--http-ports', '9', '--log-file', log],
      {},
      'serve',
      fifo.fd,
    );
    const logLines = () =>
      existsSync(log)
        ? readFileSync(log, 'utf8')
            .split('\n')
            .filter((l) => l !== '')
            .map((l) => JSON.parse(l) as LogLine)
        : [];
    await eventually(() => logLines().some((l) => l.msg === 'serving'), 10_000);
    const url = logLines().find((l) => l.msg === 'serving')?.url as string;
    await eventually(() => logLines().some((l) => l.msg === 'first resolve done'), 10_000);

    let answered = 0;
    for (let i = 0; i < 15; i++) {
      const answer = await get(`${url}/healthz`, { timeoutMs: 1000 }).catch(() => undefined);
      if (answer?.status === 200) answered += 1;
      await sleep(300);
    }
    const exit = await timeToExit(serve);
    console.log(`serve, stdout stalled: /healthz ${answered} of 15; SIGTERM to exit ${exit.ms} ms, code ${exit.code}`);
    expect(answered).toBeGreaterThanOrEqual(14);
    expect(exit.code).toBe(0);
    expect(exit.ms).toBeLessThan(10_000);
    expect(serve.stderr()).toMatch(/^scan-backends: \d+ lines never reached stdout \(its reader stalled\)\n$/);
    expect(logLines().at(-1)?.msg).toBe('stopped');
  }, 90_000);

  it('watch keeps checking while its stdout FIFO is full, says how many lines it dropped once the reader drains, and SIGTERM ends it within 10 s', async () => {
    // 200 backends (20 of them flapping): their `added` lines alone overflow the 256 KiB
    // buffer at the first resolve.
    const { config, steady } = await flappingPeers(200);
    const fifo = stdoutFifo();
    fifo.fill();
    const watch = startWatch([...FLAPPING, '--config', config], {}, 'watch', fifo.fd);
    // Every steady peer verified, then health-checked: the resolve is done and its events out.
    const stallStart = performance.now();
    await eventually(() => steady.every((p) => p.connections >= 2), 20_000);
    // Health rounds go on reaching the 180 steady peers while nobody reads.
    const checksBefore = connections(steady);
    await sleep(2000);
    const checksDuringStall = connections(steady) - checksBefore;
    const stallMs = Math.round(performance.now() - stallStart);

    const lines = await fifo.readLines(/"msg":"stdout: its reader stalled/, 10_000);
    const notes = lines.map((l) => JSON.parse(l) as LogLine).filter((l) => l.msg === DRAINED);

    fifo.fill();
    const exit = await timeToExit(watch);
    console.log(
      `watch, stdout stalled: ${checksDuringStall} checks of the steady peers in 2 s (stalled ${stallMs} ms); drained note ${JSON.stringify(notes)}; SIGTERM to exit ${exit.ms} ms, code ${exit.code}`,
    );
    expect(checksDuringStall).toBeGreaterThan(180);
    expect(notes).toHaveLength(1);
    expect(notes[0]?.droppedLines).toBeGreaterThan(0);
    expect(notes[0]?.stalledMs).toBeGreaterThan(1000);
    expect(exit.code).toBe(0);
    expect(exit.ms).toBeLessThan(10_000);
    expect(watch.stderr()).toMatch(/^scan-backends: \d+ lines never reached stdout \(its reader stalled\)\n$/);
  }, 60_000);
});
