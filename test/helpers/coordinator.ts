// Real processes whose command lines carry `--rpc`, as coordinators' do, killed when the test
// finishes: what the resolver's process source looks for; and whether a process still runs.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { onTestFinished } from 'vitest';

/** Running, not a zombie nobody reaped yet (state Z in /proc/PID/stat). */
export function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

const HOLDER = fileURLToPath(new URL('./rpc-holder.mjs', import.meta.url));

/**
 * A function that kills `child` and its process group (SIGKILL) and waits for it; also run
 * when the test finishes. Start the child with `detached: true`, so that the shell's own
 * `sleep` goes with it instead of living on as an orphan.
 */
export function stopOnFinish(child: ChildProcess): () => Promise<void> {
  const stop = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      try {
        process.kill(-(child.pid as number), 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    });
  onTestFinished(stop);
  return stop;
}

/** A script named llama-server that sleeps, started with `args`; resolves with its stop. */
export async function fakeCoordinator(args: string[]): Promise<() => Promise<void>> {
  const script = join(mkdtempSync(join(tmpdir(), 'sb-coordinator-')), 'llama-server');
  writeFileSync(script, '#!/bin/sh\nsleep 600\n');
  chmodSync(script, 0o755);
  const child = spawn(script, args, { stdio: 'ignore', detached: true });
  await new Promise<void>((resolve) => child.once('spawn', () => resolve()));
  return stopOnFinish(child);
}

/**
 * A coordinator-like process (rpc-holder.mjs, `--rpc host:port` in its argv) that holds a
 * HELLO-answered connection to the server, as a serving coordinator does; resolves with its
 * stop once HELLO was answered.
 */
export async function rpcHolder(host: string, port: number): Promise<() => Promise<void>> {
  const child = spawn(process.execPath, [HOLDER, '--rpc', `${host}:${port}`], {
    stdio: ['ignore', 'pipe', 'ignore'],
    detached: true,
  });
  const stop = stopOnFinish(child);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the holder did not get HELLO answered within 5 s')), 5000);
    child.stdout?.once('data', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  return stop;
}
