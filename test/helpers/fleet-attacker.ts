// A hostile writer on the watchers' Redis, and what the fleet tests measure it with: forged
// watch events (well formed, state up) published as another watcher would, nftables SYN
// counters (namespace only), a watcher's RSS, and a redis-server that speaks only TLS.
import { execFileSync, spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Redis } from 'ioredis';
import { onTestFinished } from 'vitest';

import type { WatchEvent } from '../../lib/watch/types.js';
import { closedPort } from './net.js';
import { setFirewall } from './netns.js';
import { requireTools } from './tools.js';

export const PREFIX = 'scan-backends:';
export const CHANNEL = `${PREFIX}watch-events`;

/** An event as a watcher publishes it: a live, verified ggml-rpc backend at host:port. */
export function forgedEvent(host: string, port: number, type: 'added' | 'up' = 'added', id = 1): WatchEvent {
  const now = new Date().toISOString();
  return {
    schema: 1,
    id,
    time: now,
    type,
    backend: {
      host,
      port,
      state: 'up',
      sources: ['config'],
      namedAt: { config: now },
      verified: true,
      health: 'serving',
      evidence: 'hello',
      rttMs: 0.2,
      rpc: { protocol: '3.0.0', devices: [{ freeBytes: 25274793984, totalBytes: 25274793984 }] },
      addedAt: now,
      since: now,
      lastSeen: now,
      lastCheck: { at: now, check: 'resolve', ok: true, saw: 'answered HELLO' },
      failures: 0,
      successes: 1,
      flaps: 0,
      lastEventId: id,
    },
    cause: { check: 'resolve', saw: 'answered HELLO' },
  } as WatchEvent;
}

/** The pub/sub message a watcher sends: `{origin, event}`, unsigned. */
export function forgedMessage(origin: string, event: WatchEvent): string {
  return JSON.stringify({ origin, event });
}

/** JSON with object keys sorted at every level (the fleet signs this text), written here anew. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * A message signed as a watcher holding `key` signs it: `{origin, at, event}` and `sig`, the
 * HMAC-SHA256 (hex) of its canonical JSON; `at` (ms since the epoch) may be set in the past.
 */
export function signedMessage(key: Buffer, origin: string, event: WatchEvent, at = Date.now()): string {
  const message: Record<string, unknown> = { origin, at, event };
  message.sig = createHmac('sha256', key).update(canonical(message)).digest('hex');
  return JSON.stringify(message);
}

/**
 * Publishes `added` and `up` for every target, every `everyMs`, for `forMs`; resolves with
 * the number of messages sent. Bounded in time whatever Redis does.
 */
export async function publishRepeatedly(
  client: Redis,
  origin: string,
  targets: readonly { host: string; port: number }[],
  forMs: number,
  everyMs = 250,
): Promise<number> {
  const until = performance.now() + forMs;
  let sent = 0;
  let id = 1;
  while (performance.now() < until) {
    const pipeline = client.pipeline();
    for (const t of targets) {
      for (const type of ['added', 'up'] as const) {
        pipeline.publish(CHANNEL, forgedMessage(origin, forgedEvent(t.host, t.port, type, id++)));
        sent += 1;
      }
    }
    await pipeline.exec();
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return sent;
}

/**
 * A flood: `perSecond` forged events, in pipelined batches every `tickMs` (20), for `forMs`, each
 * from a random origin unless `origin` is given, naming `pick()`'s address on `port`.
 */
export async function flood(
  client: Redis,
  options: { perSecond: number; forMs: number; port: number; pick: () => string; origin?: string; tickMs?: number },
): Promise<{ sent: number; elapsedMs: number }> {
  const started = performance.now();
  const tickMs = options.tickMs ?? 20;
  const perBatch = Math.max(1, Math.round((options.perSecond * tickMs) / 1000));
  let sent = 0;
  let id = 1;
  for (let batch = 0; performance.now() - started < options.forMs; batch++) {
    const pipeline = client.pipeline();
    for (let i = 0; i < perBatch; i++) {
      const origin = options.origin ?? `hostile-${randomBytes(6).toString('hex')}`;
      const type = i % 2 === 0 ? 'added' : 'up';
      pipeline.publish(CHANNEL, forgedMessage(origin, forgedEvent(options.pick(), options.port, type, id++)));
    }
    sent += perBatch;
    await pipeline.exec();
    // Paced on the clock: batch n goes out at n × tickMs, whatever the last one cost.
    const next = started + (batch + 1) * tickMs;
    await new Promise((r) => setTimeout(r, Math.max(0, next - performance.now())));
  }
  return { sent, elapsedMs: performance.now() - started };
}

/** A key file for --fleet-key-file: `bytes` random bytes as hex (2 × bytes characters) and a newline, 0600. */
export function keyFile(bytes = 32): { file: string; key: Buffer } {
  const file = join(mkdtempSync(join(tmpdir(), 'sb-fleet-key-')), 'fleet.key');
  const text = randomBytes(bytes).toString('hex');
  writeFileSync(file, `${text}\n`, { mode: 0o600 });
  // The secret is the file's bytes; the newline at the end is not part of it.
  return { file, key: Buffer.from(text) };
}

/** A key file holding exactly `content` (text or bytes). */
export function keyFileWith(content: string | Buffer): string {
  const file = join(mkdtempSync(join(tmpdir(), 'sb-fleet-key-')), 'short.key');
  writeFileSync(file, content, { mode: 0o600 });
  return file;
}

/** The watcher process's resident set, KiB, from /proc/PID/status (0 once it is gone). */
export function rssKiB(pid: number): number {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

// ── nftables SYN counters (the netns project only: setFirewall is the namespace's) ──

const TABLE = 'sb_fleet_counters';

/**
 * Replaces the namespace's ruleset with one named counter per entry, counting the SYNs (no
 * ACK) this namespace sends that match its nft expression, e.g. `ip daddr 10.0.0.1 tcp dport 22`.
 * Every packet a process here sends to any address passes the output hook, so a connect
 * that was never tried counts 0, and every attempt (retransmissions too) counts. `drop`:
 * nft expressions whose packets the input hook drops (silent, filtered hosts).
 */
export function countSyns(counters: Record<string, string>, drop: readonly string[] = []): void {
  const names = Object.keys(counters);
  setFirewall(`table inet ${TABLE} {
${names.map((n) => `  counter ${n} {}`).join('\n')}
  chain out {
    type filter hook output priority 0;
${names.map((n) => `    ${counters[n]} tcp flags & (syn|ack) == syn counter name "${n}"`).join('\n')}
  }
  chain in {
    type filter hook input priority 0;
${drop.map((d) => `    ${d} drop`).join('\n')}
  }
}`);
}

/** The packets each counter has counted so far. */
export function readSyns(): Record<string, number> {
  const out = JSON.parse(execFileSync('nft', ['-j', 'list', 'counters', 'table', 'inet', TABLE], { encoding: 'utf8' }));
  const found: Record<string, number> = {};
  for (const item of (out as { nftables: { counter?: { name: string; packets: number } }[] }).nftables) {
    if (item.counter) found[item.counter.name] = item.counter.packets;
  }
  return found;
}

/** Adds `address`/32 to lo (namespace only) and removes it after the test. */
export function addToLoopback(address: string): void {
  execFileSync('ip', ['addr', 'replace', `${address}/32`, 'dev', 'lo']);
  onTestFinished(() => {
    try {
      execFileSync('ip', ['addr', 'del', `${address}/32`, 'dev', 'lo'], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  });
}

// ── a redis-server that speaks only TLS ──

export interface TlsRedisServer {
  url: string;
  port: number;
  /** The CA that signed the server's certificate (NODE_EXTRA_CA_CERTS for a watcher). */
  caFile: string;
  /** A TLS client of the test's own, trusting caFile; closed after the test. */
  client(): Redis;
  kill(): Promise<void>;
}

/** A CA and a server certificate for 127.0.0.1 (subjectAltName IP:127.0.0.1), made now. */
export function makeCertificates(): { dir: string; ca: string; cert: string; key: string } {
  requireTools(['openssl', 'openssl']);
  const dir = mkdtempSync(join(tmpdir(), 'sb-tls-'));
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  run([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '2',
    '-subj',
    '/CN=scan-backends test CA',
  ]);
  run([
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'server.key',
    '-out',
    'server.csr',
    '-subj',
    '/CN=127.0.0.1',
  ]);
  writeFileSync(join(dir, 'ext'), 'subjectAltName=IP:127.0.0.1\n');
  run([
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.crt',
    '-days',
    '2',
    '-extfile',
    'ext',
  ]);
  return { dir, ca: join(dir, 'ca.crt'), cert: join(dir, 'server.crt'), key: join(dir, 'server.key') };
}

/** redis-server on 127.0.0.1 with TLS only (no plain port), clients not asked for certificates. */
export async function startTlsRedis(): Promise<TlsRedisServer> {
  requireTools(['redis-server', 'redis-server']);
  const certs = makeCertificates();
  const host = '127.0.0.1';
  const port = await closedPort(host);
  const child = spawn(
    'redis-server',
    [
      '--port',
      '0',
      '--tls-port',
      String(port),
      '--bind',
      host,
      '--tls-cert-file',
      certs.cert,
      '--tls-key-file',
      certs.key,
      '--tls-ca-cert-file',
      certs.ca,
      '--tls-auth-clients',
      'no',
      '--save',
      '',
      '--appendonly',
      'no',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('redis-server (TLS) did not start within 5 s')), 5000);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`redis-server (TLS) exited with ${code}: ${out.slice(-500)}`)));
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
  const url = `rediss://${host}:${port}`;
  return {
    url,
    port,
    caFile: certs.ca,
    client() {
      const c = new Redis(url, { maxRetriesPerRequest: 1, tls: { ca: readFileSync(certs.ca) } });
      c.on('error', () => {});
      clients.push(c);
      return c;
    },
    kill,
  };
}
