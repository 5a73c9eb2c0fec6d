// `scan-backends demo`: a self-contained loopback cluster to show what a scan finds. It binds
// only 127.0.0.x and scans only 127.0.0.0/24, so it is safe on any machine.
import { createServer, type Server } from 'node:net';

import { EXIT, EnvironmentError } from './exit-codes.js';
import { runScan } from './scan-command.js';
import type { OutputFormat } from './output.js';

export const DEMO_HOSTS = ['127.0.0.45', '127.0.0.48'] as const;
export const DEMO_PORT = 50052;

async function listen(host: string, port: number): Promise<Server> {
  const server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

export async function runDemo(format: OutputFormat, signal: AbortSignal): Promise<number> {
  const servers: Server[] = [];
  try {
    for (const host of DEMO_HOSTS) {
      try {
        servers.push(await listen(host, DEMO_PORT));
      } catch (error) {
        throw new EnvironmentError(`demo: cannot listen on ${host}:${DEMO_PORT}: ${(error as Error).message}`, {
          cause: error,
        });
      }
    }
    process.stderr.write(
      `demo: listening on ${DEMO_HOSTS.map((h) => `${h}:${DEMO_PORT}`).join(' and ')}; scanning 127.0.0.0/24\n`,
    );
    const code = await runScan(
      { targets: ['127.0.0.0/24'], options: { ports: DEMO_PORT }, format, openOnly: false },
      signal,
    );
    return code === EXIT.interrupted ? code : EXIT.found;
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  }
}
