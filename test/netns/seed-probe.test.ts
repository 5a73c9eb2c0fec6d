// The seed scenario with probes: .45 is a ggml-rpc server, .48 a gRPC service with a health
// service, .154 is closed and every other host of 127.0.0.0/24 drops SYNs. One scan tells each
// open port's service and health.
import grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';

import { scanAll } from '../../lib/scan/job.js';
import { runCli } from '../helpers/cli.js';
import { ggmlRpcPeer } from '../helpers/ggml-rpc-peer.js';
import { countFds, settledFdCount } from '../helpers/net.js';
import { clearFirewall, dropAllBut, enterIsolatedNamespace } from '../helpers/netns.js';

async function cluster(): Promise<void> {
  await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.45', port: 50052 });
  const server = new grpc.Server();
  new HealthImplementation({ '': 'SERVING' }).addToServer(server);
  await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.48:50052', grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  onTestFinished(() => new Promise<void>((resolve) => server.tryShutdown(() => resolve())));
}

describe('seed scenario with --probe', () => {
  beforeAll(() => {
    enterIsolatedNamespace();
    dropAllBut(50052, ['127.0.0.45', '127.0.0.48', '127.0.0.154']);
  });
  afterAll(() => clearFirewall());

  for (const engine of ['native', 'js'] as const) {
    it(`${engine}: one pass finds the ggml-rpc server and the gRPC service, each with its health`, async () => {
      await cluster();
      const before = countFds();
      const started = performance.now();
      const report = await scanAll('127.0.0.0/24', { engine, probe: 'auto', timeoutMs: 1000 });
      expect(performance.now() - started).toBeLessThan(3000);
      const open = report.results.filter((r) => r.state === 'open');
      expect(open.map((r) => [r.host, r.service, r.health])).toEqual([
        ['127.0.0.45', 'ggml-rpc', 'serving'],
        ['127.0.0.48', 'grpc', 'serving'],
      ]);
      expect(open[0]?.rpc?.protocol).toBe('5.0.0');
      expect(report.results.filter((r) => r.state === 'closed').map((r) => r.host)).toEqual(['127.0.0.154']);
      expect(report.results.filter((r) => r.state === 'filtered')).toHaveLength(251);
      expect(await settledFdCount(before)).toBe(before);
    });
  }

  it('the CLI prints the same with scan 127.0.0.0/24 --probe', async () => {
    await cluster();
    const run = await runCli(['scan', '127.0.0.0/24', '--probe', '--open', '--format', 'json']);
    expect(run.code).toBe(0);
    const { results } = JSON.parse(run.stdout);
    expect(
      results.map((r: { host: string; service: string; health: string }) => `${r.host} ${r.service} ${r.health}`),
    ).toEqual(['127.0.0.45 ggml-rpc serving', '127.0.0.48 grpc serving']);
  });
});
