// A real process whose command line is `llama-server ARGS…` (a script named llama-server that
// sleeps), killed when the test finishes: what the resolver's process source looks for.
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { onTestFinished } from 'vitest';

/** Starts the fake coordinator; resolves with a function that stops it. */
export async function fakeCoordinator(args: string[]): Promise<() => Promise<void>> {
  const script = join(mkdtempSync(join(tmpdir(), 'sb-coordinator-')), 'llama-server');
  writeFileSync(script, '#!/bin/sh\nsleep 600\n');
  chmodSync(script, 0o755);
  const child = spawn(script, args, { stdio: 'ignore' });
  await new Promise<void>((resolve) => child.once('spawn', () => resolve()));
  const stop = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  onTestFinished(stop);
  return stop;
}
