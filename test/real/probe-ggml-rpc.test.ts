import { Socket } from 'node:net';

import { describe, expect, it } from 'vitest';

import { probe, scanAll } from '../../lib/scan/job.js';
import { ggmlRpcPeer } from '../helpers/ggml-rpc-peer.js';
import { countFds, eventually, settledFdCount } from '../helpers/net.js';

const CAPS_HELLO = Buffer.concat([Buffer.from([14, 24, 0, 0, 0, 0, 0, 0, 0]), Buffer.alloc(24)]);

/** A client that holds the serial server, the way a running coordinator does. */
async function holdServer(host: string, port: number): Promise<Socket> {
  const socket = new Socket();
  await new Promise<void>((resolve) => socket.connect(port, host, resolve));
  socket.write(CAPS_HELLO);
  await new Promise((resolve) => socket.once('data', resolve));
  return socket;
}

describe.each(['native', 'js'] as const)('ggml-rpc probe, %s engine', (engine) => {
  it('identifies a 5.x server, its protocol and every device', async () => {
    const devices = [
      { freeBytes: 8 * 2 ** 30, totalBytes: 24 * 2 ** 30 },
      { freeBytes: 2 ** 30, totalBytes: 16 * 2 ** 30 },
    ];
    const peer = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.121', devices });
    const before = countFds();
    const r = await probe('127.0.0.121', peer.port, { engine, service: 'ggml-rpc' });
    expect(r).toMatchObject({ state: 'open', service: 'ggml-rpc', health: 'serving' });
    expect(r.rpc).toEqual({
      protocol: '5.0.0',
      usableBy: '>=5.0.0 <6.0.0',
      legacyHello: false,
      devices: devices.map((d, index) => ({ index, ...d })),
    });
    expect(r.reason).toBe('ggml-rpc 5.0.0, 2 devices (8.0 GiB free of 24.0 GiB, 1.0 GiB free of 16.0 GiB)');
    expect(await settledFdCount(before)).toBe(before);
    expect(peer.log).toEqual(['accepted', 'hello', 'closed']);
  });

  it('reconnects with the empty HELLO for a 3.x server and judges compatibility by llama.cpp rule', async () => {
    const peer = await ggmlRpcPeer({ generation: '3.x', host: '127.0.0.122' });
    // Without a client version nothing is incompatible: the result says who can use it.
    const described = await probe('127.0.0.122', peer.port, { engine, service: 'ggml-rpc' });
    expect(described).toMatchObject({ health: 'serving', rpc: { protocol: '3.6.1', usableBy: '>=3.6.0 <4.0.0' } });
    expect(described.rpc?.compatible).toBeUndefined();
    const newer = await probe('127.0.0.122', peer.port, { engine, service: 'ggml-rpc', rpcVersion: '5.1.0' });
    expect(newer).toMatchObject({ service: 'ggml-rpc', health: 'incompatible' });
    expect(newer.rpc).toMatchObject({ protocol: '3.6.1', compatible: false, legacyHello: true });
    expect(newer.reason).toContain('ggml-rpc 3.6.1 does not match client 5.1.0');
    const same = await probe('127.0.0.122', peer.port, { engine, service: 'ggml-rpc', rpcVersion: '3.7.0' });
    expect(same).toMatchObject({ health: 'serving', rpc: { compatible: true, devices: [{ index: 0 }] } });
    const older = await probe('127.0.0.122', peer.port, { engine, service: 'ggml-rpc', rpcVersion: '3.5.0' });
    expect(older.health).toBe('incompatible');
    // The 24-byte HELLO was dropped with RST, the empty one answered on a new connection.
    expect(peer.log.slice(0, 4)).toEqual(['accepted', 'closed: HELLO size mismatch', 'accepted', 'hello']);
    expect(peer.dead).toBe(false);
  });

  it('asks a 2.x server for memory without a device index (it has no DEVICE_COUNT)', async () => {
    const peer = await ggmlRpcPeer({ generation: '2.x', host: '127.0.0.123' });
    const r = await probe('127.0.0.123', peer.port, { engine, service: 'ggml-rpc', rpcVersion: '2.0.0' });
    expect(r).toMatchObject({ service: 'ggml-rpc', health: 'serving' });
    expect(r.rpc).toMatchObject({
      protocol: '2.0.0',
      legacyHello: true,
      devices: [{ index: 0, totalBytes: 25274793984 }],
    });
    expect(peer.log).not.toContain('closed: unknown command 15');
  });

  it('reports a server held by another client as busy, leaves it alive, and finds it serving once free', async () => {
    const peer = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.124', port: 50052 });
    const before = countFds();
    const holder = await holdServer('127.0.0.124', 50052);
    const busy = await probe('127.0.0.124', 50052, { engine, probeTimeoutMs: 400 });
    expect(busy).toMatchObject({ service: 'ggml-rpc', health: 'busy' });
    expect(busy.reason).toContain('busy with another client');
    holder.destroy();
    // The probe gave up with RST, so the server dropped its queued HELLO instead of dying.
    expect(await eventually(() => peer.log.includes('reset'))).toBe(true);
    expect(peer.dead).toBe(false);
    const free = await probe('127.0.0.124', 50052, { engine });
    expect(free).toMatchObject({ service: 'ggml-rpc', health: 'serving' });
    expect(await settledFdCount(before)).toBe(before);
  });

  it('finds ggml-rpc servers among other hosts in one scan of a range', async () => {
    const a = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.125', port: 50052 });
    const b = await ggmlRpcPeer({ generation: '3.x', host: '127.0.0.127', port: 50052 });
    const report = await scanAll('127.0.0.125-128', { engine, probe: 'auto', rpcVersion: '5.1.0' });
    const open = report.results.filter((r) => r.state === 'open');
    expect(open.map((r) => [r.host, r.service, r.health, r.rpc?.protocol])).toEqual([
      ['127.0.0.125', 'ggml-rpc', 'serving', '5.0.0'],
      ['127.0.0.127', 'ggml-rpc', 'incompatible', '3.6.1'],
    ]);
    expect(report.results.filter((r) => r.state === 'closed').every((r) => r.service === undefined)).toBe(true);
    expect(a.dead || b.dead).toBe(false);
  });
});

describe('the ggml-rpc peer itself', () => {
  // Both behaviours were seen on a real 3.6.1 server built from ggml (2026-11-23).
  it('dies like the real server when a client sends HELLO and closes fully (FIN) while queued: the hazard the probe avoids', async () => {
    const peer = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.126' });
    const holder = await holdServer('127.0.0.126', peer.port);
    const careless = new Socket();
    careless.on('error', () => {});
    await new Promise<void>((resolve) => careless.connect(peer.port, '127.0.0.126', resolve));
    careless.write(CAPS_HELLO, () => careless.destroy()); // what a naive probe does on timeout
    await new Promise((resolve) => setTimeout(resolve, 50));
    holder.destroy();
    expect(await eventually(() => peer.dead)).toBe(true);
  });

  it('survives a client that only half-closes: it can still read the reply', async () => {
    const peer = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.129' });
    const holder = await holdServer('127.0.0.129', peer.port);
    const polite = new Socket();
    await new Promise<void>((resolve) => polite.connect(peer.port, '127.0.0.129', resolve));
    polite.end(CAPS_HELLO);
    const answer = new Promise<Buffer>((resolve) => polite.once('data', resolve));
    holder.destroy();
    expect((await answer).readBigUInt64LE(0)).toBe(28n);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(peer.dead).toBe(false);
  });
});
