// DNS-SD peers for the netns tests: python3-zeroconf announcing a service (an announcer
// written by others), `scan-backends announce`, and a hostile responder that floods the group.
// Each is stopped when its test finishes; every send goes to the mDNS group on lo only.
import { spawn, spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { fileURLToPath } from 'node:url';

import * as dnsPacket from 'dns-packet';
import { onTestFinished } from 'vitest';

import { startCli } from './cli.js';
import { inCI } from './tools.js';

const PYTHON = '/usr/bin/python3';
const ZEROCONF_SCRIPT = fileURLToPath(new URL('./zeroconf-announce.py', import.meta.url));
const ZEROCONF_BROWSE = fileURLToPath(new URL('./zeroconf-browse.py', import.meta.url));

/** Why python3-zeroconf cannot run here, or null. */
export function missingZeroconf(): string | null {
  const probe = spawnSync(PYTHON, ['-c', 'import zeroconf'], { encoding: 'utf8' });
  return probe.status === 0 ? null : 'python3-zeroconf not importable: install the Debian package "python3-zeroconf"';
}

/** Skip outside CI when python3-zeroconf is missing (under CI the test fails naming it). */
export function skipWithoutZeroconf(): boolean {
  const missing = missingZeroconf();
  if (!missing || inCI) return false;
  console.warn(`skipping: ${missing}`);
  return true;
}

/** Waits for `text` in a child's stdout, or rejects after `timeoutMs`. */
function waitForOutput(stream: NodeJS.ReadableStream, text: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`no "${text}" within ${timeoutMs} ms: ${seen}`)), timeoutMs);
    stream.on('data', (chunk: Buffer | string) => {
      seen += chunk.toString();
      if (seen.includes(text)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

/** python3-zeroconf announcing NAME.TYPE at ADDRESS:PORT; `stop()` unregisters it (its goodbye). */
export async function zeroconfAnnouncer(
  type: string,
  name: string,
  port: number,
  address: string,
): Promise<{ stop: () => Promise<void> }> {
  const missing = missingZeroconf();
  if (missing) throw new Error(missing);
  const child = spawn(PYTHON, [ZEROCONF_SCRIPT, type, name, String(port), address], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  onTestFinished(async () => {
    if (child.exitCode === null) child.kill('SIGKILL');
    await exited;
  });
  await waitForOutput(child.stdout, 'registered', 10_000);
  return {
    stop: async () => {
      child.stdin.end(); // the script unregisters (goodbye) and exits
      await exited;
    },
  };
}

/** What python3-zeroconf's browser resolves of TYPE within `seconds` (it exits by itself). */
export async function zeroconfBrowse(
  type: string,
  seconds: number,
): Promise<{ name: string; server: string; port: number; addresses: string[]; txt: Record<string, string> }[]> {
  const missing = missingZeroconf();
  if (missing) throw new Error(missing);
  const child = spawn(PYTHON, [ZEROCONF_BROWSE, type, String(seconds)], { stdio: ['ignore', 'pipe', 'inherit'] });
  onTestFinished(() => void child.kill('SIGKILL'));
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  await new Promise((resolve) => child.once('close', resolve));
  return out
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Awaited<ReturnType<typeof zeroconfBrowse>>[number]);
}

/** `scan-backends announce …`, its JSON log lines collected; resolves once it said `waitFor`. */
export async function announceCli(args: string[], env: NodeJS.ProcessEnv = {}, waitFor = 'announced') {
  const { child, done } = startCli(['announce', ...args], { env });
  const logs: { msg: string; [k: string]: unknown }[] = [];
  let buffered = '';
  child.stdout?.on('data', (chunk: string) => {
    buffered += chunk;
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) if (line.startsWith('{')) logs.push(JSON.parse(line) as (typeof logs)[number]);
  });
  onTestFinished(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await done;
  });
  const said = async (msg: string, timeoutMs = 10_000) => {
    const until = performance.now() + timeoutMs;
    while (!logs.some((l) => l.msg === msg)) {
      if (performance.now() > until) throw new Error(`announce did not say "${msg}": ${JSON.stringify(logs)}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };
  await said(waitFor);
  return { child, done, logs, said };
}

/**
 * A hostile responder: unsolicited responses from `address`:5353 to the group, `packets()`
 * each turn, every `everyMs`, at most `maxPackets` in all. Bound to a unicast address it hears
 * no queries: it only talks.
 */
export async function hostileResponder(
  address: string,
  packets: () => dnsPacket.Packet[],
  { everyMs = 20, maxPackets = 2000 } = {},
): Promise<{ sent: () => number; stop: () => void }> {
  const socket = createSocket({ type: 'udp4', reuseAddr: true });
  await new Promise<void>((resolve) => socket.bind(5353, address, resolve));
  socket.setMulticastInterface('127.0.0.1');
  let sent = 0;
  const timer = setInterval(() => {
    for (const p of packets()) {
      if (sent >= maxPackets) return;
      sent++;
      socket.send(dnsPacket.encode({ ...p, type: 'response' }), 5353, '224.0.0.251');
    }
  }, everyMs);
  const stop = () => {
    clearInterval(timer);
    socket.close();
  };
  onTestFinished(() => {
    clearInterval(timer);
    try {
      socket.close();
    } catch {
      // already closed
    }
  });
  return { sent: () => sent, stop };
}
