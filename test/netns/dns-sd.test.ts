// DNS-SD with real peers in the namespace (lo with multicast on): python3-zeroconf announcing
// a ggml-rpc peer as _llama-rpc._tcp, our own `announce`, and a hostile responder that floods
// answers, names public and metadata addresses (peers listen there, inside the namespace, to
// count connections) and sends a huge TXT. The source finds the real ones and verifies them,
// never connects where the guards refuse, ignores a responder off the local link, and a
// watcher drops a withdrawn service;
// python3-zeroconf's browser reads our announcement.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type * as dnsPacket from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';

import { browseOnce, DnsSdBrowser } from '../../lib/dns-sd/browser.js';
import { resolveBackends } from '../../lib/resolver/index.js';
import type { WatchEvent } from '../../lib/watch/types.js';
import { watchBackends } from '../../lib/watch/watcher.js';
import {
  announceCli,
  hostileResponder,
  skipWithoutZeroconf,
  zeroconfAnnouncer,
  zeroconfBrowse,
} from '../helpers/dns-sd.js';
import { rpcHolder } from '../helpers/coordinator.js';
import { ggmlRpcPeer } from '../helpers/ggml-rpc-peer.js';
import { notifyReceiver } from '../helpers/notify-receiver.js';
import { eventually } from '../helpers/net.js';
import { valid } from '../helpers/schemas.js';
import { enterIsolatedNamespace } from '../helpers/netns.js';

/** Addresses outside what the guards allow, put on lo inside the namespace only. */
const REFUSED_ADDRESSES = ['8.8.8.8', '169.254.169.254'];

function ip(...args: string[]): void {
  execFileSync('ip', args);
}

describe.skipIf(skipWithoutZeroconf())('dns-sd in a namespace', () => {
  beforeAll(() => {
    enterIsolatedNamespace();
    ip('link', 'set', 'lo', 'multicast', 'on');
    ip('route', 'replace', '224.0.0.0/4', 'dev', 'lo');
    for (const a of REFUSED_ADDRESSES) ip('addr', 'add', `${a}/32`, 'dev', 'lo');
  });
  afterAll(() => {
    for (const a of REFUSED_ADDRESSES) ip('addr', 'del', `${a}/32`, 'dev', 'lo');
    ip('route', 'del', '224.0.0.0/4', 'dev', 'lo');
  });

  it('resolve finds a python3-zeroconf _llama-rpc._tcp peer and our own announce, and verifies both', async () => {
    const theirs = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.2' });
    const ours = await ggmlRpcPeer({
      generation: '5.x',
      host: '127.0.0.3',
      devices: [{ freeBytes: 1024, totalBytes: 4096 }],
    });
    await zeroconfAnnouncer('_llama-rpc._tcp', 'zeroconf node', theirs.port, '127.0.0.2');
    const announce = await announceCli(['--rpc', `127.0.0.3:${ours.port}`, '--name', 'our.node', '--interval', '1s']);

    const resolution = await resolveBackends({ sources: ['dns-sd'], dnsSdWaitMs: 2000, timeoutMs: 500 });
    const byHost = Object.fromEntries(resolution.backends.map((b) => [b.host, b]));
    expect(byHost['127.0.0.2']).toMatchObject({
      port: theirs.port,
      sources: ['dns-sd'],
      verified: true,
      evidence: 'hello',
      dnsSd: {
        instance: 'zeroconf node',
        type: '_llama-rpc._tcp.local',
        interface: 'lo',
        txt: { by: 'python3-zeroconf' },
      },
    });
    expect(byHost['127.0.0.3']).toMatchObject({
      port: ours.port,
      verified: true,
      rpc: { protocol: '5.0.0' },
      dnsSd: {
        instance: 'our-node',
        type: '_ggml-rpc._tcp.local',
        txt: { txtvers: '1', protovers: '5.0.0', devices: '1', memory: '4096' },
      },
    });
    expect(resolution.sources[0]).toMatchObject({ name: 'dns-sd', status: 'ok' });
    expect(valid('resolution', { schema: 1, ...resolution })).toBe('valid');

    // A browser written by others reads our announcement as we meant it.
    expect(await zeroconfBrowse('_ggml-rpc._tcp', 2.5)).toEqual([
      {
        name: 'our-node._ggml-rpc._tcp.local.',
        // Its own host name, never this host's: our cache-flush must not replace the host's addresses.
        server: 'our-node-rpc.local.',
        port: ours.port,
        addresses: ['127.0.0.3'],
        txt: { txtvers: '1', protovers: '5.0.0', devices: '1', memory: '4096' },
      },
    ]);

    // SIGTERM: the goodbye, then exit 0; a browse started now finds only python's.
    announce.child.kill('SIGTERM');
    expect((await announce.done).code).toBe(0);
    expect(announce.logs.at(-1)).toMatchObject({ msg: 'announce stopped', goodbye: true });
    const after = await resolveBackends({ sources: ['dns-sd'], dnsSdWaitMs: 1500, timeoutMs: 500 });
    expect(after.backends.map((b) => b.host)).toEqual(['127.0.0.2']);
  }, 60_000);

  it('a hostile responder: public and metadata addresses never connected to, a huge TXT refused, a flood bounded', async () => {
    const refusedPeers = await Promise.all(REFUSED_ADDRESSES.map((host) => ggmlRpcPeer({ generation: '5.x', host })));
    const real = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.4' });
    const type = '_ggml-rpc._tcp.local';
    const instance = (label: string, host: string, address: string, port: number, txt: string[] = ['txtvers=1']) => ({
      answers: [
        { name: type, type: 'PTR', ttl: 120, data: `${label}.${type}` },
        { name: `${label}.${type}`, type: 'SRV', ttl: 120, data: { priority: 0, weight: 0, port, target: host } },
        { name: `${label}.${type}`, type: 'TXT', ttl: 120, data: txt },
        { name: host, type: 'A', ttl: 120, data: address },
      ],
    });
    let round = 0;
    const flood = (): dnsPacket.Packet[] => {
      round++;
      // 100 PTRs a packet, new names every round: more than a packet, a source and the view take.
      const ptrs = Array.from({ length: 100 }, (_, i) => ({
        name: type,
        type: 'PTR' as const,
        ttl: 120,
        data: `flood-${round}-${i}.${type}`,
      }));
      return [
        instance('public', 'public.local', '8.8.8.8', refusedPeers[0]!.port),
        instance('metadata', 'metadata.local', '169.254.169.254', refusedPeers[1]!.port),
        instance(
          'huge txt',
          'huge.local',
          '127.0.0.4',
          real.port,
          Array.from({ length: 8 }, (_, i) => `k${i}=${'x'.repeat(250)}`),
        ),
        { answers: ptrs },
      ] as dnsPacket.Packet[];
    };
    const hostile = await hostileResponder('127.0.0.66', flood, { everyMs: 20, maxPackets: 1500 });

    const refused: string[] = [];
    const browser = await DnsSdBrowser.open({ onRefused: (why) => refused.push(why) });
    onTestFinished(() => browser.close());
    const resolution = await resolveBackends({ sources: ['dns-sd'], dnsSdWaitMs: 2000, timeoutMs: 500 });
    const seen = browser.candidates();
    await browser.close();
    hostile.stop();

    expect(resolution.backends).toMatchObject([
      { host: '127.0.0.4', port: real.port, verified: true, dnsSd: { instance: 'huge txt', txt: {} } },
    ]);
    const dropped = resolution.sources[0]!.dropped;
    expect(dropped.find((d) => d.host === '8.8.8.8')?.reason).toMatch(/a public address: never connected to/);
    expect(dropped.find((d) => d.host === '169.254.169.254')?.reason).toMatch(/link-local or cloud-metadata/);
    for (const peer of refusedPeers) expect(peer.connections).toBe(0);
    // The flood: per-packet and per-source caps, and the rate limit, each did their part.
    expect(hostile.sent()).toBeGreaterThan(100);
    expect(refused.some((r) => /records over the per-packet limit/.test(r))).toBe(true);
    expect(refused.some((r) => /names 64 instances already/.test(r))).toBe(true);
    expect(refused.some((r) => /TXT .* over 1300 bytes/.test(r))).toBe(true);
    expect(seen.length).toBeLessThanOrEqual(64);
  }, 60_000);

  it('ignores a responder that is not on the local link (RFC 6762 §11)', async () => {
    // 192.0.2.0/24 is routed to lo as local (no interface address): a sender there is on no
    // local subnet, as one across a router would be.
    ip('route', 'add', 'local', '192.0.2.0/24', 'dev', 'lo');
    onTestFinished(() => ip('route', 'del', 'local', '192.0.2.0/24', 'dev', 'lo'));
    const type = '_ggml-rpc._tcp.local';
    const offLink: dnsPacket.Packet = {
      answers: [
        { name: type, type: 'PTR', ttl: 120, data: `offlink.${type}` },
        {
          name: `offlink.${type}`,
          type: 'SRV',
          ttl: 120,
          data: { priority: 0, weight: 0, port: 50052, target: 'o.local' },
        },
        { name: 'o.local', type: 'A', ttl: 120, data: '10.77.9.9' },
      ],
    };
    const refused: string[] = [];
    const browser = await DnsSdBrowser.open({ onRefused: (why) => refused.push(why) });
    onTestFinished(() => browser.close());
    const sender = await hostileResponder('192.0.2.7', () => [offLink], { everyMs: 50, maxPackets: 20 });
    expect(await eventually(() => sender.sent() >= 20 && refused.length >= 10, 5000)).toBe(true);
    sender.stop();
    expect(new Set(refused)).toEqual(new Set(['a response from off the local link']));
    expect(browser.candidates()).toEqual([]);
  }, 20_000);

  it('a watcher adds an announced server, drops it on its goodbye and adds it again when it is back', async () => {
    const peer = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.5' });
    const watcher = watchBackends({
      sources: ['dns-sd'],
      intervalMs: 3_600_000, // only DNS-SD changes ask for a resolve here
      healthIntervalMs: 300,
      timeoutMs: 300,
      probeTimeoutMs: 500,
      failAfter: 2,
    });
    onTestFinished(() => watcher.close());
    const events: WatchEvent[] = [];
    watcher.on('event', (e) => events.push(e));
    await watcher.ready;
    const of = (type: string) => events.filter((e) => e.type === type && e.backend.host === '127.0.0.5');

    const announce = await announceCli(['--rpc', `127.0.0.5:${peer.port}`, '--name', 'w', '--interval', '300ms']);
    expect(await eventually(() => of('added').length === 1, 10_000)).toBe(true);
    const added = of('added')[0]!;
    expect(added.backend).toMatchObject({
      sources: ['dns-sd'],
      verified: true,
      dnsSd: { instance: 'w', interface: 'lo' },
    });
    expect(valid('watch-event', added)).toBe('valid');

    // The server stops: announce says goodbye, the watcher's view loses it.
    await peer.close();
    await announce.said('withdrawn: the server does not answer');
    expect(await eventually(() => of('removed').length === 1, 10_000)).toBe(true);
    expect(watcher.snapshot().backends.some((b) => b.host === '127.0.0.5')).toBe(false);

    // Back on the same port: announced again, added again.
    await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.5', port: peer.port });
    expect(await eventually(() => of('added').length === 2, 10_000)).toBe(true);
    announce.child.kill('SIGTERM');
    expect((await announce.done).code).toBe(0);
  }, 60_000);

  it('a browse aborted while its socket binds ends at once instead of waiting out its time', async () => {
    const controller = new AbortController();
    const browsing = browseOnce({ waitMs: 60_000, signal: controller.signal });
    controller.abort(new Error('stop'));
    await expect(browsing).rejects.toThrow('stop');
  }, 20_000);

  it('announce speaks systemd notify: READY=1 after its first check, WATCHDOG=1, STOPPING=1', async () => {
    const peer = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.6' });
    const dir = mkdtempSync(join(tmpdir(), 'sb-announce-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const { socket, received } = await notifyReceiver(dir);
    const announce = await announceCli(['--rpc', `127.0.0.6:${peer.port}`, '--name', 'sd', '--interval', '300ms'], {
      NOTIFY_SOCKET: socket,
      WATCHDOG_USEC: '400000',
      WATCHDOG_PID: '',
    });
    expect(await eventually(() => received().split('WATCHDOG=1').length > 2, 5000)).toBe(true);
    expect(received()).toContain(`READY=1\\nSTATUS=announcing 127.0.0.6:${peer.port} as sd`);
    announce.child.kill('SIGTERM');
    expect((await announce.done).code).toBe(0);
    expect(await eventually(() => received().includes('STOPPING=1'), 2000)).toBe(true);
    expect(received().indexOf('STOPPING=1')).toBeGreaterThan(received().indexOf('READY=1'));
  }, 30_000);

  it('announce never connects to a server a local coordinator holds, and announces it busy', async () => {
    const peer = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.8' });
    await rpcHolder('127.0.0.8', peer.port);
    expect(peer.connections).toBe(1);
    const announce = await announceCli(['--rpc', `127.0.0.8:${peer.port}`, '--name', 'held', '--interval', '100ms']);
    expect(announce.logs.find((l) => l.msg === 'announced')).toMatchObject({ busy: true, txt: { txtvers: '1' } });
    const found = await resolveBackends({ sources: ['dns-sd'], dnsSdWaitMs: 1500, timeoutMs: 500 });
    expect(found.backends).toMatchObject([{ host: '127.0.0.8', evidence: 'held', dnsSd: { instance: 'held' } }]);
    // Neither announce's check nor the resolve connected: the holder's is the only connection.
    expect(peer.connections).toBe(1);
    announce.child.kill('SIGTERM');
    expect((await announce.done).code).toBe(0);
  }, 30_000);

  it('announce --rpc 0.0.0.0 announces the addresses of this host, and a resolve verifies one', async () => {
    // A veth pair inside the namespace gives it a non-loopback address; removed after.
    ip('link', 'add', 'sbv0', 'type', 'veth', 'peer', 'name', 'sbv1');
    onTestFinished(() => ip('link', 'del', 'sbv0'));
    ip('addr', 'add', '10.77.0.1/24', 'dev', 'sbv0');
    ip('link', 'set', 'sbv0', 'up');
    ip('link', 'set', 'sbv1', 'up');
    const peer = await ggmlRpcPeer({ generation: '5.x', host: '0.0.0.0' });
    const announce = await announceCli(['--rpc', `0.0.0.0:${peer.port}`, '--name', 'wild', '--interval', '1s']);
    expect(announce.logs.find((l) => l.msg === 'announce started')).toMatchObject({ addresses: ['10.77.0.1'] });
    const found = await resolveBackends({ sources: ['dns-sd'], dnsSdWaitMs: 1500, timeoutMs: 500 });
    expect(found.backends).toMatchObject([{ host: '10.77.0.1', port: peer.port, verified: true, evidence: 'hello' }]);
    announce.child.kill('SIGTERM');
    expect((await announce.done).code).toBe(0);
  }, 30_000);
});
