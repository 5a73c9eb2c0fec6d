// The process source with real coordinator processes, and the witnesses that need one: the
// only file in the host namespace that starts coordinators (its tests run one at a time), so
// other files' resolves never see them.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it, onTestFinished } from 'vitest';

import { resolveBackends } from '../../lib/resolver/index.js';
import { probe } from '../../lib/scan/job.js';
import { watchBackends } from '../../lib/watch/watcher.js';
import type { WatchEvent } from '../../lib/watch/types.js';
import { configFile } from '../helpers/config.js';
import { runCli } from '../helpers/cli.js';
import { fakeCoordinator, rpcHolder, stopOnFinish } from '../helpers/coordinator.js';
import { ggmlRpcPeer } from '../helpers/ggml-rpc-peer.js';
import { hostilePeer } from '../helpers/hostile.js';
import { eventually } from '../helpers/net.js';

const PROBE_TIMEOUT_MS = 800;

/** A coordinator of another user (uid 65534) whose command line is `args`, running until the test ends. */
async function otherUsersCoordinator(args: string[], argv0?: string): Promise<void> {
  const child = spawn('sh', ['-c', 'sleep 600', ...args], {
    ...(argv0 === undefined ? {} : { argv0 }),
    uid: 65534,
    gid: 65534,
    stdio: 'ignore',
    detached: true,
  });
  stopOnFinish(child);
  await new Promise<void>((resolve) => child.once('spawn', () => resolve()));
}

describe('the process source', () => {
  it('takes the backends of a running llama-server, drops its placeholder, and falls through to the config when it is gone', async () => {
    await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.171', port: 50052 });
    const config = join(mkdtempSync(join(tmpdir(), 'sb-config-')), 'rpc_backends.conf');
    writeFileSync(config, '127.0.0.171\n');
    const stop = await fakeCoordinator(['--rpc', '127.0.0.171:50052,coordinator:0']);

    const live = await runCli([
      'resolve',
      '--sources',
      'process,config',
      '--config',
      config,
      '--format',
      'rpc',
      '--explain',
    ]);
    expect(live.stdout).toBe('127.0.0.171:50052\n');
    expect(live.code).toBe(0);
    expect(live.stderr).toContain('process: ok, 2 named (1 coordinator process)');
    expect(live.stderr).toContain('dropped coordinator:0: port 0: a placeholder, not a backend');
    expect(live.stderr).toMatch(/config: skipped/);

    await stop();
    const gone = await runCli(['resolve', '--sources', 'process,config', '--config', config, '--format', 'json']);
    const out = JSON.parse(gone.stdout);
    expect(out.sources.map((s: { name: string; status: string }) => `${s.name} ${s.status}`)).toEqual([
      'process empty',
      'config ok',
    ]);
    expect(out.backends).toEqual([expect.objectContaining({ host: '127.0.0.171', port: 50052, sources: ['config'] })]);
  });
});

describe('coordinators as witnesses', () => {
  it.each(['native', 'js'] as const)(
    '%s: a real ggml-rpc server held by another client is busy (a guess alone), and alive afterwards',
    async (engine) => {
      const host = engine === 'native' ? '127.0.0.204' : '127.0.0.214';
      const peer = await ggmlRpcPeer({ generation: '5.x', host });
      const stop = await rpcHolder(host, peer.port);
      const r = await probe(host, peer.port, { engine, service: 'ggml-rpc', probeTimeoutMs: PROBE_TIMEOUT_MS });
      expect(r).toMatchObject({ service: 'ggml-rpc', health: 'busy', guess: true });
      await stop();
      const free = await probe(host, peer.port, { engine, service: 'ggml-rpc' });
      expect(free).toMatchObject({ health: 'serving', rpc: { protocol: '5.0.0' } });
      expect(peer.dead).toBe(false);
    },
  );

  it('keeps a silent port busy when a running coordinator names it', async () => {
    const sink = await hostilePeer('sink', '127.0.0.222');
    await fakeCoordinator(['-m', 'model.gguf', '--rpc', `127.0.0.222:${sink}`]);
    const file = configFile([`127.0.0.222:${sink}`]);
    const r = await resolveBackends({ sources: ['config'], configPath: file, probeTimeoutMs: PROBE_TIMEOUT_MS });
    expect(r.backends).toEqual([
      expect.objectContaining({ host: '127.0.0.222', verified: true, health: 'busy', evidence: 'coordinator' }),
    ]);
    expect(r.backends[0]?.reason).toMatch(/names it in --rpc/);
  });

  it('never connects to a server its coordinator holds: five resolves in a row list it, and it serves the next client at once', async () => {
    const peer = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.225' });
    const stop = await rpcHolder('127.0.0.225', peer.port);
    for (let i = 0; i < 5; i++) {
      const r = await resolveBackends({ sources: ['process'], probeTimeoutMs: PROBE_TIMEOUT_MS });
      const mine = r.backends.find((b) => b.host === '127.0.0.225');
      expect(mine, `resolve ${i + 1}`).toMatchObject({ health: 'busy', verified: true, evidence: 'held' });
    }
    // Only the holder ever connected: no probe spent a slot of the accept queue (a probe's
    // connection would wait in the queue unserved, so connections are counted).
    expect(peer.connections).toBe(1);
    await stop();
    expect(await eventually(() => peer.log.includes('closed') || peer.log.includes('reset'))).toBe(true);
    const next = await probe('127.0.0.225', peer.port, { service: 'ggml-rpc' });
    expect(next).toMatchObject({ health: 'serving' });
    expect(peer.dead).toBe(false);
  });

  it.skipIf(process.getuid?.() !== 0)(
    'skips a coordinator of another user unless told to trust every user',
    async () => {
      const peer = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.226' });
      await otherUsersCoordinator(['llama-server', '--rpc', `127.0.0.226:${peer.port}`]);
      const mine = await resolveBackends({ sources: ['process'] });
      expect(mine.backends.some((b) => b.host === '127.0.0.226')).toBe(false);
      expect(mine.sources[0]?.warnings?.join('\n')).toMatch(
        /runs as uid 65534, not this user \(0\) or root; --trust-all-users/,
      );
      // Its server is named with why it is left alone, never connected to.
      expect(mine.sources[0]?.dropped).toContainEqual({
        host: '127.0.0.226',
        port: peer.port,
        reason: expect.stringMatching(/^named by an untrusted coordinator: pid \d+ \(.+\) runs as uid 65534/),
      });
      expect(peer.connections).toBe(0);
      const all = await resolveBackends({ sources: ['process'], trustAllUsers: true });
      expect(all.backends.find((b) => b.host === '127.0.0.226')).toMatchObject({ health: 'serving' });
    },
  );

  it.skipIf(process.getuid?.() !== 0)(
    "lists at most 64 servers of other users' coordinators, and prints their names as a peer's text",
    async () => {
      const rpc = Array.from({ length: 100 }, (_, i) => `127.0.0.227:${20_000 + i}`).join(',');
      await otherUsersCoordinator(['x', '--rpc', rpc], `/tmp/\u001b[31m${'n'.repeat(300)}`);
      const report = (await resolveBackends({ sources: ['process'] })).sources[0];
      const theirs = report?.dropped.filter((d) => d.host === '127.0.0.227') ?? [];
      expect(theirs).toHaveLength(64);
      expect(theirs.map((d) => d.port)).toEqual(Array.from({ length: 64 }, (_, i) => 20_000 + i));
      expect(report?.warnings).toContain("36 more servers named by other users' coordinators, not listed");
      const name = /\((.*)\) runs as uid 65534/.exec(theirs[0]?.reason ?? '')?.[1] ?? '';
      expect(name).toBe(`[31m${'n'.repeat(59)}…`);
    },
  );

  it('the scan source does not connect to a held server either: it keeps it busy, taken out of the scan', async () => {
    const peer = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.228' });
    await rpcHolder('127.0.0.228', peer.port);
    for (let i = 0; i < 3; i++) {
      const r = await resolveBackends({ sources: ['scan'], subnet: '127.0.0.228', ports: peer.port });
      expect(r.backends, `resolve ${i + 1}`).toMatchObject([
        { host: '127.0.0.228', sources: ['scan'], health: 'busy', evidence: 'held' },
      ]);
      expect(r.sources[0]?.message).toMatch(/scanned 0 host:port pairs of 127\.0\.0\.228; 1 held by a coordinator/);
    }
    expect(peer.connections).toBe(1);
  });

  it('the watcher never connects to a server its coordinator holds, across many health rounds, and sees it serve again once freed', async () => {
    const peer = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.227' });
    const stop = await rpcHolder('127.0.0.227', peer.port);
    const watcher = watchBackends({
      sources: ['config'],
      configPath: configFile([`127.0.0.227:${peer.port}`]),
      intervalMs: 60_000,
      healthIntervalMs: 100,
      probeTimeoutMs: PROBE_TIMEOUT_MS,
    });
    onTestFinished(() => watcher.close());
    await watcher.ready;
    expect(watcher.snapshot().backends[0]).toMatchObject({ state: 'up', health: 'busy', evidence: 'held' });
    expect(await eventually(() => watcher.snapshot().watcher.healthRounds >= 10, 10_000)).toBe(true);
    expect(watcher.snapshot().backends[0]).toMatchObject({ state: 'up', health: 'busy', failures: 0 });
    // Ten rounds and one resolve, and only the holder ever connected (a probe would wait in
    // the queue, never served, so count connections, not what the server served).
    expect(peer.connections).toBe(1);
    await stop();
    const served = await eventually(() => watcher.snapshot().backends[0]?.health === 'serving', 5000);
    expect(served).toBe(true);
    expect((watcher.eventsSince(0) as WatchEvent[] | null)?.map((e) => [e.type, e.changes])).toEqual([
      ['added', undefined],
      ['changed', [{ field: 'health', from: 'busy', to: 'serving' }]],
    ]);
    expect(peer.dead).toBe(false);
  });
});
