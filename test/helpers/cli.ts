// Runs the built CLI (dist/cli.js) as a real child process.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function assertBuilt(): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first (npm test does)`);
}

/**
 * Starts `scan-backends ...args`; `shellPrefix` (e.g. "ulimit -n 128 &&") runs it through sh;
 * `stdout`, a descriptor the test opened (a FIFO), replaces the pipe the test reads.
 */
export function startCli(
  args: string[],
  options: { shellPrefix?: string; env?: NodeJS.ProcessEnv; stdout?: number } = {},
): {
  child: ChildProcess;
  done: Promise<CliRun>;
} {
  assertBuilt();
  const env = { ...process.env, ...options.env };
  const stdio: StdioOptions = ['pipe', options.stdout ?? 'pipe', 'pipe'];
  const child: ChildProcess = options.shellPrefix
    ? spawn('sh', ['-c', `${options.shellPrefix} exec "$0" "$@"`, process.execPath, CLI, ...args], { env, stdio })
    : spawn(process.execPath, [CLI, ...args], { env, stdio });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<CliRun>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, done };
}

export function runCli(
  args: string[],
  options: { shellPrefix?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<CliRun> {
  return startCli(args, options).done;
}
