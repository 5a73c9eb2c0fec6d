// `scan-backends run` against real ggml-rpc peers (lib/demo) on 127.0.0.x and a real stand-in
// coordinator process (test/helpers/stand-in-coordinator.mjs), in a namespace of its own.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';

import { Supervisor, type Claims } from '../../lib/run/supervisor.js';
import type { CoordinatorEvent, CoordinatorStatus } from '../../lib/watch/types.js';
import { watchBackends } from '../../lib/watch/watcher.js';
import { configFile } from '../helpers/config.js';
import { alive } from '../helpers/coordinator.js';
import { ggmlRpcPeer } from '../helpers/ggml-rpc-peer.js';
import { get, sse } from '../helpers/http.js';
import { eventually } from '../helpers/net.js';
import { writeLlamaModel } from '../helpers/gguf-writer.js';
import { enterIsolatedNamespace } from '../helpers/netns.js';
import { valid } from '../helpers/schemas.js';
import { isLog, startWatch, type LogLine, type WatchProcess } from '../helpers/watch.js';

const STAND_IN = fileURLToPath(new URL('../helpers/stand-in-coordinator.mjs', import.meta.url));
const WATCH = ['--sources', 'config', '--health-interval', '200ms', '--interval', '1h', '--fail-after', '2'];
const WATCH_TIMING = ['--recover-after', '1', '--timeout', '300', '--probe-timeout', '500'];

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function coordinatorEvents(run: WatchProcess, type?: CoordinatorEvent['type']): CoordinatorEvent[] {
  return (run.events as unknown as CoordinatorEvent[]).filter(
    (e) => e.type.startsWith('coordinator-') && (type === undefined || e.type === type),
  );
}

/** The first coordinator event of `type` after the id `after`, waited for. */
async function coordinatorEvent(
  run: WatchProcess,
  type: CoordinatorEvent['type'],
  after = 0,
): Promise<CoordinatorEvent> {
  const matches = (line: unknown) => (line as CoordinatorEvent).type === type && (line as CoordinatorEvent).id > after;
  return (await run.waitFor(type, matches, 20_000)) as unknown as CoordinatorEvent;
}

async function startRun(
  config: string,
  runFlags: string[],
  standInArgs: string[],
): Promise<{ run: WatchProcess; port: number }> {
  const port = await freePort();
  const args = [...WATCH, ...WATCH_TIMING, '--config', config, ...runFlags];
  const command = ['--', process.execPath, STAND_IN, '--port', String(port), ...standInArgs];
  return { run: startWatch([...args, ...command], {}, 'run'), port };
}

describe('scan-backends run', () => {
  beforeAll(() => enterIsolatedNamespace());

  it('starts once usable ({rpc} substituted), restarts with the survivors when a peer dies, stops on SIGTERM', async () => {
    const a = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.61' });
    const b = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.62' });
    const c = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.60' });
    const listA = `127.0.0.61:${a.port}`;
    const listB = `127.0.0.62:${b.port}`;
    const listC = `127.0.0.60:${c.port}`;
    const { run } = await startRun(
      configFile([listA, listB, listC]),
      ['--min-servers', '2'],
      [
        '--rpc',
        '{rpc}',
        // Five health rounds between the hand-over and its connections: none may connect.
        '--connect-delay',
        '1000',
      ],
    );
    const ready = await coordinatorEvent(run, 'coordinator-ready');
    const starting = coordinatorEvents(run, 'coordinator-starting')[0] as CoordinatorEvent;
    expect(starting.coordinator.servers).toEqual([listC, listA, listB]);
    const firstPid = starting.coordinator.pid as number;
    expect(alive(firstPid)).toBe(true);
    // Its output reaches the log with the prefix.
    await run.waitFor(
      'the child line in the log',
      (l) => (l as { msg?: string }).msg === `coordinator: stand-in: rpc ${listC},${listA},${listB}`,
    );
    // Each peer served the child and no one else: nothing of ours connected after the hand-over.
    const connectionsAtReady = [a.connections, b.connections, c.connections];

    const killedAt = performance.now();
    await b.close();
    const restarted = await coordinatorEvent(run, 'coordinator-restarting');
    expect(restarted.coordinator.servers).toEqual([listC, listA]);
    const readyAgain = await coordinatorEvent(run, 'coordinator-ready', ready.id);
    const deathToReadyMs = Math.round(performance.now() - killedAt);
    console.log(`death-to-ready: ${deathToReadyMs} ms; msToReady ${readyAgain.coordinator.msToReady} ms`);
    expect(alive(firstPid)).toBe(false);
    // Each peer: the watcher's HELLO before the hand-over, then the child's connection, no more.
    expect(connectionsAtReady).toEqual([2, 2, 2]);

    const secondPid = readyAgain.coordinator.pid as number;
    run.signal('SIGTERM');
    expect(await run.exited).toEqual({ code: 0, signal: null });
    expect(alive(secondPid)).toBe(false);
    // Every line on stdout, backend or coordinator event, is what schemas/watch-event says.
    expect(coordinatorEvents(run).map((e) => e.type)).toEqual([
      'coordinator-starting',
      'coordinator-ready',
      'coordinator-exited',
      'coordinator-restarting',
      'coordinator-starting',
      'coordinator-ready',
      'coordinator-exited',
    ]);
    for (const e of run.events) expect(valid('watch-event', e)).toBe('valid');
    // One count for both kinds: no id twice, none out of order, on stdout as in the ring.
    const ids = run.events.map((e) => e.id);
    expect(ids.every((id, i) => i === 0 || id > (ids[i - 1] as number))).toBe(true);
    expect(ids.length).toBeGreaterThan(coordinatorEvents(run).length);
  }, 60_000);

  it('restarts with the survivors when a lost server goes down while the coordinator lives on (llama-server between requests)', async () => {
    const a = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.67' });
    const b = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.68' });
    const listA = `127.0.0.67:${a.port}`;
    const { run } = await startRun(configFile([listA, `127.0.0.68:${b.port}`]), [], ['--on-loss', 'stay']);
    const ready = await coordinatorEvent(run, 'coordinator-ready');
    const killedAt = performance.now();
    await b.close();
    const restarted = await coordinatorEvent(run, 'coordinator-restarting');
    expect(restarted.coordinator).toMatchObject({ servers: [listA], reason: `lost 127.0.0.68:${b.port}` });
    await coordinatorEvent(run, 'coordinator-ready', ready.id);
    console.log(`death-to-ready, through the watcher's hysteresis: ${Math.round(performance.now() - killedAt)} ms`);
    expect(alive(ready.coordinator.pid as number)).toBe(false);
    run.signal('SIGTERM');
    expect((await run.exited).code).toBe(0);
  }, 60_000);

  it('--listen shows the coordinator: the Coordinator section, /api/backends, /metrics, SSE replay; restarts counted', async () => {
    const a = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.73' });
    const b = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.74' });
    const listA = `127.0.0.73:${a.port}`;
    const listB = `127.0.0.74:${b.port}`;
    const { run } = await startRun(configFile([listA, listB]), ['--listen', '127.0.0.1:0'], []);
    const url = (await run.waitFor<LogLine>('serving', isLog('serving'))).url as string;
    const ready = await coordinatorEvent(run, 'coordinator-ready');
    const pid = ready.coordinator.pid as number;

    const page = await get(`${url}/`);
    expect(page.status).toBe(200);
    expect(page.body).toContain('<h2>Coordinator</h2>');
    expect(page.body).toContain('<span class="badge up">READY</span>');
    expect(page.body).toContain(`<dt>PID</dt><dd>${pid}</dd>`);
    expect(page.body).toContain(`<code>${listA},${listB}</code>`);
    const fragment = await get(`${url}/fragments/coordinator`);
    expect(fragment.body).toContain('READY');
    const document = JSON.parse((await get(`${url}/api/backends`)).body) as { coordinator: CoordinatorStatus };
    expect(valid('serve-backends', document)).toBe('valid');
    expect(document.coordinator).toMatchObject({ state: 'ready', pid, servers: [listA, listB], restarts: 0 });
    const metrics = (await get(`${url}/metrics`)).body;
    expect(metrics).toMatch(/^scan_backends_coordinator_up 1$/m);
    expect(metrics).toMatch(/^scan_backends_coordinator_restarts_total 0$/m);
    expect(metrics).toMatch(/^scan_backends_coordinator_ready_seconds \d/m);

    await b.close();
    await coordinatorEvent(run, 'coordinator-ready', ready.id);
    const after = (await get(`${url}/metrics`)).body;
    const restarts = Number(/^scan_backends_coordinator_restarts_total (\d+)$/m.exec(after)?.[1]);
    expect(restarts).toBeGreaterThanOrEqual(1);
    expect(after).toMatch(/^scan_backends_coordinator_up 1$/m);
    expect((await get(`${url}/`)).body).toContain(`<code>${listA}</code>`);

    // The lost server's own event comes after its hysteresis, which the restart does not wait for.
    await run.waitFor('down', (e) => (e as { type?: string }).type === 'down');
    // The stream replays both kinds from one count: every id once, in order, none missing.
    const stream = await sse(`${url}/api/events`, { 'Last-Event-ID': '0' });
    await eventually(() => stream.events().length >= run.events.length, 5000);
    stream.close();
    const ids = stream.events().map((e) => Number(e.id));
    expect(ids).toEqual(ids.map((_, i) => i + 1));
    const types = stream.events().map((e) => (e.data as { type: string }).type);
    expect(types).toContain('coordinator-restarting');
    expect(types).toContain('down');
    run.signal('SIGTERM');
    expect((await run.exited).code).toBe(0);
  }, 60_000);

  it('gives up after --max-restarts failed starts in a row: exit 5, an event, a line on stderr', async () => {
    const a = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.63' });
    const { run } = await startRun(
      configFile([`127.0.0.63:${a.port}`]),
      ['--max-restarts', '3'],
      ['--exit-after', '100'],
    );
    expect((await run.exited).code).toBe(5);
    expect(coordinatorEvents(run, 'coordinator-crash-loop')).toHaveLength(1);
    expect(coordinatorEvents(run, 'coordinator-starting')).toHaveLength(3);
    expect(run.stderr()).toMatch(/crash loop/);
  }, 60_000);

  it('restarts a coordinator that is not ready within --ready-timeout (its health answers 503)', async () => {
    const a = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.69' });
    const { run } = await startRun(
      configFile([`127.0.0.69:${a.port}`]),
      ['--ready-timeout', '500ms', '--max-restarts', '2'],
      ['--load-ms', '600000'],
    );
    expect((await run.exited).code).toBe(5);
    expect(coordinatorEvents(run, 'coordinator-ready')).toHaveLength(0);
    const [restarting] = coordinatorEvents(run, 'coordinator-restarting');
    expect(restarting?.coordinator.reason).toMatch(
      /^not ready within 500 ms \(http:\/\/127\.0\.0\.1:\d+\/health: loading\)$/,
    );
    // Stopped before the next start: never two at once.
    const exits = coordinatorEvents(run, 'coordinator-exited');
    expect(exits).toHaveLength(2);
    expect(exits[0]?.coordinator.code).toBe(0);
  }, 60_000);

  it('a SIGKILL of run kills the coordinator too', async () => {
    const a = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.64' });
    const { run } = await startRun(configFile([`127.0.0.64:${a.port}`]), [], []);
    const ready = await coordinatorEvent(run, 'coordinator-ready');
    const pid = ready.coordinator.pid as number;
    run.signal('SIGKILL');
    await run.exited;
    expect(await eventually(() => !alive(pid), 5000)).toBe(true);
  }, 60_000);

  for (const grow of ['always', 'never', 'idle'] as const) {
    it(`--grow ${grow}: a server that appears is taken ${grow === 'never' ? 'never' : grow === 'always' ? 'at once' : 'once the coordinator is idle'}`, async () => {
      const a = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.65' });
      // The second server's port is taken now and served later.
      const portB = await freePort();
      const dir = mkdtempSync(join(tmpdir(), 'sb-run-'));
      const busyFile = join(dir, 'busy');
      writeFileSync(busyFile, '');
      const { run } = await startRun(
        configFile([`127.0.0.65:${a.port}`, `127.0.0.66:${portB}`]),
        ['--grow', grow, '--settle', '1h', '--interval', '1s'],
        ['--busy-file', busyFile],
      );
      await coordinatorEvent(run, 'coordinator-ready');
      await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.66', port: portB });
      await run.waitFor(
        'b up',
        (l) =>
          (l as { type?: string; backend?: { host: string } }).type === 'added' &&
          (l as { backend: { host: string } }).backend.host === '127.0.0.66',
        20_000,
      );
      if (grow === 'always') {
        const r = await coordinatorEvent(run, 'coordinator-restarting');
        expect(r.coordinator.servers).toHaveLength(2);
      } else {
        // Ten health rounds (200 ms each) with the coordinator busy (idle), or at all (never): no restart.
        await new Promise((resolve) => setTimeout(resolve, 2000));
        expect(coordinatorEvents(run, 'coordinator-restarting')).toHaveLength(0);
        if (grow === 'idle') {
          rmSync(busyFile);
          const r = await coordinatorEvent(run, 'coordinator-restarting');
          expect(r.coordinator.reason).toMatch(/idle/);
          expect(existsSync(busyFile)).toBe(false);
        }
      }
      run.signal('SIGTERM');
      expect((await run.exited).code).toBe(0);
    }, 60_000);
  }

  it('library: a server another supervisor claims is waited for; a lost claim restarts; stop releases', async () => {
    const a = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.70' });
    const server = `127.0.0.70:${a.port}`;
    // The shared registry as the claims see it: server → holder.
    const registry = new Map<string, string>();
    const claimsOf = (me: string): Claims & { lose: (why: string) => void } => {
      let lost: (why: string) => void = () => {};
      return {
        claim: async (servers) => {
          const taken = servers.find((s) => (registry.get(s) ?? me) !== me);
          if (taken) throw new Error(`${taken} is ${registry.get(taken)}'s`);
          for (const s of servers) registry.set(s, me);
        },
        release: async () => {
          for (const [s, holder] of registry) if (holder === me) registry.delete(s);
        },
        onLost: (cb) => (lost = cb),
        lose: (why) => lost(why),
      };
    };
    const supervise = async (me: string) => {
      const watcher = watchBackends({ sources: ['config'], configPath: configFile([server]), healthIntervalMs: 200 });
      onTestFinished(() => watcher.close());
      const events: CoordinatorEvent[] = [];
      watcher.on('coordinator', (e) => events.push(e));
      const claims = claimsOf(me);
      const port = await freePort();
      const supervisor = new Supervisor({
        watcher,
        command: [process.execPath, STAND_IN, '--port', String(port)],
        claims,
        passThroughFd: null,
      });
      onTestFinished(() => supervisor.stop());
      void supervisor.run();
      return { events, claims, supervisor };
    };
    const first = await supervise('first');
    expect(await eventually(() => first.events.some((e) => e.type === 'coordinator-ready'), 10_000)).toBe(true);
    expect(registry.get(server)).toBe('first');

    const second = await supervise('second');
    // Two health rounds of the second watcher: it has the server usable and must not start.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(second.events).toEqual([]);

    first.claims.lose('lease expired');
    expect(
      await eventually(
        () =>
          first.events.some(
            (e) => e.type === 'coordinator-restarting' && e.coordinator.reason === 'claim lost: lease expired',
          ),
        10_000,
      ),
    ).toBe(true);
    await first.supervisor.stop();
    expect(registry.get(server)).not.toBe('first');
    expect(await eventually(() => second.events.some((e) => e.type === 'coordinator-ready'), 10_000)).toBe(true);
    expect(registry.get(server)).toBe('second');
    await second.supervisor.stop();
    expect(registry.size).toBe(0);
  }, 60_000);

  it("--model starts on the servers the model fits on, with the plan's --tensor-split, and waits while it fits nowhere", async () => {
    // A 7B-class replica (Q8_0, about 7 GiB of weights) and two servers of 4.5 GiB each:
    // it needs two of them, and one alone is not enough.
    const dims = { layers: 32, embd: 4096, heads: 32, kvHeads: 8, ff: 14336, vocab: 32000 };
    const model = writeLlamaModel('run-7b.gguf', dims, { type: 'Q8_0', contextLength: 32768 });
    const devices = [{ freeBytes: 4.5 * 2 ** 30, totalBytes: 8 * 2 ** 30 }];
    const a = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.71', devices });
    const b = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.72', devices });
    const listA = `127.0.0.71:${a.port}`;
    const listB = `127.0.0.72:${b.port}`;
    // The command's own -m and -c: the plan reads that model at that context.
    const { run } = await startRun(configFile([listA, listB]), [], ['-m', model, '-c', '4096']);
    await coordinatorEvent(run, 'coordinator-ready');
    const starting = coordinatorEvents(run, 'coordinator-starting')[0] as CoordinatorEvent;
    expect([...(starting.coordinator.servers ?? [])].sort()).toEqual([listA, listB]);
    const split = (await run.waitFor('the split in the log', (l) =>
      /^coordinator: stand-in: tensor-split /.test(String((l as { msg?: string }).msg)),
    )) as { msg: string };
    const [, slots, ngl] = /tensor-split ([0-9,]+) ngl (\S+)/.exec(split.msg) ?? [];
    // 33 slots (32 layers and the output), spread over the two servers; -ngl 999 added.
    expect(
      slots
        ?.split(',')
        .map(Number)
        .reduce((x, y) => x + y, 0),
    ).toBe(33);
    expect(slots?.split(',')).toHaveLength(2);
    expect(ngl).toBe('999');

    await b.close();
    const waiting = (await run.waitFor(
      'the wait',
      (l) =>
        (l as { msg?: string; reason?: string }).msg === 'coordinator waiting' &&
        /^needs/.test(String((l as { reason?: string }).reason)),
    )) as {
      reason?: string;
    };
    expect(waiting.reason).toMatch(/^needs .* the usable servers have .* free/);
    expect(coordinatorEvents(run, 'coordinator-starting')).toHaveLength(1);
    run.signal('SIGTERM');
    expect(await run.exited).toEqual({ code: 0, signal: null });
  });
});
