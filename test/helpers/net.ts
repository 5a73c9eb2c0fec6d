// Real sockets on 127.0.0.x for the tests, each closed when its test finishes.
import { readdirSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';

import { onTestFinished } from 'vitest';

/** A TCP listener that accepts and closes; port 0 picks a free one. Closed after the test. */
export async function listen(host: string, port = 0): Promise<{ server: Server; port: number }> {
  const server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('listener has no TCP address');
  return { server, port: address.port };
}

/**
 * Listens with `server` on `host`, port 0, and returns the port. After the test every
 * connection it accepted is destroyed and it is closed: a peer that misbehaves on purpose
 * would otherwise keep the test's process busy.
 */
export async function servePeer(server: Server, host: string): Promise<number> {
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, host, () => resolve()));
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return (server.address() as { port: number }).port;
}

/** A port that nothing listens on at `host`: bound once to get it from the kernel, then freed. */
export async function closedPort(host: string): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, host, () => resolve()));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Open descriptors of this process, from /proc/self/fd. */
export function countFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/**
 * The descriptor count once it is back to `expected`, or after 1 s of waiting. Peers that run
 * in this process close their end of a connection a moment after the probe closes its own,
 * so a leak shows as a count that never comes back, not as one that is briefly higher.
 */
export async function settledFdCount(expected: number): Promise<number> {
  for (let i = 0; i < 100 && countFds() !== expected; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return countFds();
}

/**
 * Polls `condition` (which may be async) every 10 ms until it holds or `timeoutMs` passes;
 * returns its last value.
 */
export async function eventually(condition: () => boolean | Promise<boolean>, timeoutMs = 2000): Promise<boolean> {
  const until = performance.now() + timeoutMs;
  while (!(await condition()) && performance.now() < until) await new Promise((resolve) => setTimeout(resolve, 10));
  return condition();
}
