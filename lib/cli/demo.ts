// `scan-backends demo`: a self-contained loopback cluster to show what a scan finds: two
// ggml-rpc servers (the test peer, speaking llama.cpp's protocol), one current and one of an
// older protocol generation. It binds only 127.0.0.x and scans only 127.0.0.0/24, so it is safe
// on any machine.
import { startGgmlRpcPeer, type GgmlRpcPeer, type PeerOptions } from '../demo/ggml-rpc-peer.js';

import { EXIT, EnvironmentError } from './exit-codes.js';
import { runScan } from './scan-command.js';
import type { OutputFormat } from './output.js';

export const DEMO_PORT = 50052;
/** The demo plays a coordinator of protocol 5.1.0, so the 3.6.1 server shows as incompatible. */
const DEMO_CLIENT = '5.1.0';
const GiB = 2 ** 30;
const DEMO_PEERS: PeerOptions[] = [
  {
    generation: '5.x',
    host: '127.0.0.45',
    port: DEMO_PORT,
    devices: [
      { freeBytes: 22.5 * GiB, totalBytes: 24 * GiB },
      { freeBytes: 10 * GiB, totalBytes: 12 * GiB },
    ],
  },
  { generation: '3.x', host: '127.0.0.48', port: DEMO_PORT, devices: [{ freeBytes: 60 * GiB, totalBytes: 64 * GiB }] },
];
export const DEMO_HOSTS = DEMO_PEERS.map((p) => p.host);

export async function runDemo(format: OutputFormat, signal: AbortSignal): Promise<number> {
  const servers: GgmlRpcPeer[] = [];
  try {
    for (const peer of DEMO_PEERS) {
      const host = peer.host;
      try {
        servers.push(await startGgmlRpcPeer(peer));
      } catch (error) {
        throw new EnvironmentError(`demo: cannot listen on ${host}:${DEMO_PORT}: ${(error as Error).message}`, {
          cause: error,
        });
      }
    }
    process.stderr.write(
      `demo: ggml-rpc servers on ${DEMO_HOSTS.map((h) => `${h}:${DEMO_PORT}`).join(' and ')}; scanning and probing 127.0.0.0/24\n`,
    );
    const code = await runScan(
      {
        targets: ['127.0.0.0/24'],
        options: { ports: DEMO_PORT, probe: 'auto', rpcVersion: DEMO_CLIENT },
        format,
        openOnly: false,
      },
      signal,
    );
    return code === EXIT.interrupted ? code : EXIT.found;
  } finally {
    await Promise.all(servers.map((s) => s.close()));
  }
}
