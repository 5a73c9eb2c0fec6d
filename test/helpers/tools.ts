// Tools the tests need from the machine. Outside CI a missing tool skips its tests with a
// message naming the package; under CI=true it fails them, because a skip there would be
// counted as a pass that proved nothing.
import { spawnSync } from 'node:child_process';

const cache = new Map<string, string | null>();

/** Returns null when `command` runs, else the reason it cannot (naming the Debian package). */
export function missingTool(command: string, debianPackage: string): string | null {
  if (!cache.has(command)) {
    const probe = spawnSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' });
    cache.set(
      command,
      probe.status === 0 ? null : `${command} not found: install the Debian package "${debianPackage}"`,
    );
  }
  return cache.get(command) ?? null;
}

export const inCI = process.env.CI === 'true';

/**
 * Whether tests that need these tools should be skipped. Under CI it never skips: the tests
 * run and fail on the missing tool, which `requireTools` names.
 */
export function skipWithout(...tools: [command: string, debianPackage: string][]): boolean {
  const missing = tools.map(([c, p]) => missingTool(c, p)).filter((m): m is string => m !== null);
  if (missing.length === 0) return false;
  if (inCI) return false;
  console.warn(`skipping: ${missing.join('; ')}`);
  return true;
}

/** Throws naming the package of the first missing tool; call it inside the test. */
export function requireTools(...tools: [command: string, debianPackage: string][]): void {
  for (const [command, pkg] of tools) {
    const missing = missingTool(command, pkg);
    if (missing) throw new Error(missing);
  }
}

/**
 * True in `npm run test:asan`, whose preloaded allocator keeps freed memory in quarantine:
 * memory bounds mean nothing there (a watcher idles at 255 MiB), so tests check them only outside.
 */
export const UNDER_SANITIZER = process.env.LD_PRELOAD?.includes('asan') ?? false;

/**
 * The environment for a tool that is not ours (chromium, prometheus): without the sanitizer
 * runtime `npm run test:asan` preloads into every process, which such a tool cannot run with.
 */
export function foreignEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of ['LD_PRELOAD', 'ASAN_OPTIONS', 'UBSAN_OPTIONS']) delete env[name];
  return env;
}
