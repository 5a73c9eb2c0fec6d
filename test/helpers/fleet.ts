// What a test of the fleet's Redis needs beside the watcher: what Redis sent (INFO's output
// counter), who listens on the events channel, a process's memory from /proc, an HTTP answer
// counted instead of kept, and the values another watcher would write, well shaped.
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { Redis } from 'ioredis';

import type { WatchEvent } from '../../lib/watch/types.js';
import { startWatch, type LogLine, type WatchProcess } from './watch.js';

export const PREFIX = 'scan-backends:';
export const CHANNEL = `${PREFIX}watch-events`;

/** Bytes the server has written to all its clients so far (INFO stats). */
export async function redisOutputBytes(client: Redis): Promise<number> {
  const stats = await client.info('stats');
  const match = /^total_net_output_bytes:(\d+)/m.exec(stats);
  if (!match) throw new Error('INFO stats has no total_net_output_bytes');
  return Number(match[1]);
}

/** Subscribers of the watchers' events channel. */
export async function subscribers(client: Redis, channel = CHANNEL): Promise<number> {
  const reply = (await client.call('PUBSUB', 'NUMSUB', channel)) as [string, number];
  return Number(reply[1]);
}

/** VmRSS and VmHWM (the peak) of a live process, in bytes, from /proc/PID/status. */
export function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rss: field('VmRSS'), peak: field('VmHWM') };
}

/**
 * NODE_OPTIONS for a child that prints its peak RSS on stderr as it exits
 * ("maxrss_kb N"); `maxRssOf` reads it back.
 */
export function maxRssEnv(): NodeJS.ProcessEnv {
  const file = join(mkdtempSync(join(tmpdir(), 'sb-maxrss-')), 'maxrss.mjs');
  writeFileSync(
    file,
    "process.on('exit', () => process.stderr.write(`maxrss_kb ${process.resourceUsage().maxRSS}\\n`));\n",
  );
  return { NODE_OPTIONS: `--import=${file}` };
}

export function maxRssOf(stderr: string): number {
  const match = /maxrss_kb (\d+)/.exec(stderr);
  if (!match) throw new Error(`no maxrss_kb line in stderr: ${stderr.slice(0, 500)}`);
  return Number(match[1]) * 1024;
}

/** A GET whose body is counted, not kept (its first `keep` bytes are): the answer may be huge. */
export function getCounted(
  url: string,
  timeoutMs = 30_000,
  keep = 256 * 1024,
): Promise<{ status: number; bytes: number; head: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { timeout: timeoutMs }, (res) => {
      let bytes = 0;
      const kept: Buffer[] = [];
      res.on('data', (chunk: Buffer) => {
        if (bytes < keep) kept.push(chunk.subarray(0, keep - bytes));
        bytes += chunk.length;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, head: Buffer.concat(kept).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no whole answer from ${url} within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** A registration as a watcher writes it (`<prefix>scanner:<id>`), fields overridden. */
export function scannerInfo(id: string, fields: Record<string, unknown> = {}): Record<string, unknown> {
  const now = new Date().toISOString();
  return {
    id,
    host: 'elsewhere',
    pid: 4242,
    version: '0.1.0',
    subnets: [],
    scanning: [],
    startedAt: now,
    heartbeatAt: now,
    ...fields,
  };
}

/** A WatchEvent (schema 1) as a watcher publishes it: `added`, the backend up and verified. */
export function watchEvent(host: string, port: number): WatchEvent {
  const now = new Date().toISOString();
  return {
    schema: 1,
    id: 1,
    time: now,
    type: 'added',
    backend: {
      host,
      port,
      state: 'up',
      sources: ['config'],
      verified: true,
      health: 'serving',
      evidence: 'hello',
      addedAt: now,
      since: now,
      failures: 0,
      successes: 1,
      flaps: 0,
    },
    cause: { check: 'resolve', saw: 'answered HELLO' },
  };
}

/** The watcher's "ignored a Redis value" lines of one kind. */
export function ignoredLines(w: WatchProcess, kind: 'event' | 'scanner' | 'lease' | 'registry'): LogLine[] {
  return w.logs.filter((l) => l.msg === 'ignored a Redis value' && l.kind === kind);
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A watcher scanning `subnets` on 50052 every 500 ms, sharing `redisUrl`; health checks idle
 * (they would connect too, and tests count the scans' connects). */
export function scanWatcher(subnets: readonly string[], redisUrl: string, extra: string[] = []) {
  return startWatch([
    '--sources',
    'scan',
    ...subnets.flatMap((s) => ['--subnet', s]),
    '-p',
    '50052',
    '--redis',
    redisUrl,
    '--interval',
    '500ms',
    '--health-interval',
    '1h',
    '--timeout',
    '300',
    '--probe-timeout',
    '500',
    ...extra,
  ]);
}
