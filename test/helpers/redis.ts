// A real redis-server on a free loopback port, stopped after the test.
import { spawn, type ChildProcess } from 'node:child_process';

import { Redis } from 'ioredis';
import { onTestFinished } from 'vitest';

import { closedPort } from './net.js';
import { requireTools } from './tools.js';

export interface RedisServer {
  url: string;
  port: number;
  process: ChildProcess;
  /** A client of the test's own, closed after the test. */
  client(): Redis;
  kill(): Promise<void>;
}

/** A new server, or one on `port` again (a restart: its data is gone, as after a crash). */
export async function startRedis(host = '127.0.0.1', port?: number): Promise<RedisServer> {
  requireTools(['redis-server', 'redis-server']);
  port ??= await closedPort(host);
  const child = spawn('redis-server', ['--port', String(port), '--bind', host, '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  // Ready when it says so; bounded so a broken install fails the test instead of hanging it.
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('redis-server did not start within 5 s')), 5000);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}`)));
  });
  const clients: Redis[] = [];
  const kill = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  onTestFinished(async () => {
    for (const c of clients) c.disconnect();
    await kill();
  });
  return {
    url: `redis://${host}:${port}`,
    port,
    process: child,
    client() {
      const c = new Redis(`redis://${host}:${port}`, { maxRetriesPerRequest: 1 });
      c.on('error', () => {});
      clients.push(c);
      return c;
    },
    kill,
  };
}
