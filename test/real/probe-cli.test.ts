import { describe, expect, it } from 'vitest';

import { runCli } from '../helpers/cli.js';
import { ggmlRpcPeer } from '../helpers/ggml-rpc-peer.js';
import { closedPort } from '../helpers/net.js';

describe('scan-backends probe', () => {
  it('exits 0 when every address serves, with the verdict in JSON', async () => {
    const peer = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.161' });
    const run = await runCli(['probe', `127.0.0.161:${peer.port}`, '--service', 'ggml-rpc', '--format', 'json']);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report).toMatchObject({ schema: 1 });
    expect(report.results[0]).toMatchObject({
      host: '127.0.0.161',
      port: peer.port,
      state: 'open',
      service: 'ggml-rpc',
      health: 'serving',
      rpc: {
        protocol: '5.0.0',
        usableBy: '>=5.0.0 <6.0.0',
        devices: [{ index: 0, freeBytes: 25274793984, totalBytes: 25274793984 }],
      },
    });
    expect(Object.keys(report.results[0]).slice(0, 4)).toEqual(['host', 'port', 'state', 'rttMs']);
  });

  it('exits 1 when reachable but not healthy, and 4 when a connection fails', async () => {
    const old = await ggmlRpcPeer({ generation: '3.x', host: '127.0.0.162' });
    // The client version from the environment, as a coordinator's unit file would set it.
    const incompatible = await runCli(
      ['probe', `127.0.0.162:${old.port}`, '--service', 'ggml-rpc', '--format', 'table'],
      {
        env: { SCAN_BACKENDS_RPC_VERSION: '5.1.0' },
      },
    );
    expect(incompatible.code).toBe(1);
    expect(incompatible.stdout).toMatch(/127\.0\.0\.162\s+\d+\s+open\s+ggml-rpc\s+incompatible/);
    const compatible = await runCli([
      'probe',
      `127.0.0.162:${old.port}`,
      '--rpc-version',
      '3.6.1',
      '--service',
      'ggml-rpc',
    ]);
    expect(compatible.code).toBe(0);
    const refused = await closedPort('127.0.0.163');
    const mixed = await runCli(
      ['probe', `127.0.0.162:${old.port}`, `127.0.0.163:${refused}`, '--service', 'ggml-rpc', '--format', 'table'],
      {
        env: { SCAN_BACKENDS_RPC_VERSION: '5.1.0' },
      },
    );
    expect(mixed.code).toBe(4);
    expect(mixed.stdout).toMatch(/127\.0\.0\.163\s+\d+\s+closed\s+unknown\s+unknown\s+[\d.]+ ms\s+connection refused/);
  });

  it.each([
    [['probe'], 'probe: name at least one HOST[:PORT]'],
    [['probe', '127.0.0.1:70000'], '127.0.0.1:70000: port must be 1..65535'],
    [
      ['probe', '127.0.0.1', '--service', 'ssh'],
      '--service: expected auto or a list of ggml-rpc, grpc, http; got "ssh"',
    ],
    [['probe', '127.0.0.1', '--rpc-version', '5'], '--rpc-version: expected major.minor.patch, got "5"'],
    [['scan', '127.0.0.1', '--service', 'grpc'], '--service needs --probe'],
  ])('%j is a usage error', async (args, message) => {
    const run = await runCli(args);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(message);
  });
});

describe('scan-backends scan --probe', () => {
  it('adds service, health, reason and details to open ports and keeps schema 1', async () => {
    const peer = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.165', port: 50052 });
    const run = await runCli(['scan', '127.0.0.164-166', '--probe', '--format', 'json']);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(Object.keys(report)).toEqual(['schema', 'engine', 'elapsedMs', 'timing', 'results']);
    const [closedA, open, closedB] = report.results;
    expect(open).toMatchObject({ host: '127.0.0.165', state: 'open', service: 'ggml-rpc', health: 'serving' });
    expect(open.reason).toBe('ggml-rpc 5.0.0, 1 device (23.5 GiB free of 23.5 GiB)');
    expect(closedA).toEqual({ host: '127.0.0.164', port: 50052, state: 'closed', rttMs: closedA.rttMs });
    expect(closedB.service).toBeUndefined();
    expect(peer.dead).toBe(false);
  });
});
