// scripts/prebuild-all.sh (issue 22): the prebuilds a Debian x64 or arm64 machine can make (its
// own, and the other architecture's with Debian's cross compiler), a line for each one it
// cannot (musl, darwin), and a cross build that came out for the wrong architecture refused.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it, onTestFinished } from 'vitest';

import { layoutMismatch } from '../../lib/scan/addon/load.js';
import { requireTools, skipWithout } from '../helpers/tools.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SCRIPT = join(ROOT, 'scripts', 'prebuild-all.sh');
const host = process.arch;
const other = host === 'x64' ? 'arm64' : 'x64';
const otherTriple = other === 'arm64' ? 'aarch64-linux-gnu' : 'x86_64-linux-gnu';
const TOOLS: [string, string][] = [
  ['g++', 'g++'],
  ['make', 'make'],
  [`${otherTriple}-g++`, `g++-${otherTriple.replace(/_/g, '-')}`],
];
const glibcLinux = process.platform === 'linux' && !existsSync('/etc/alpine-release');

/** The architecture in an ELF header's e_machine. */
function elfArch(file: string): string {
  const machine = readFileSync(file).readUInt16LE(18);
  return ({ 62: 'x64', 183: 'arm64' } as Record<number, string>)[machine] ?? `e_machine ${machine}`;
}

/** A directory removed when the test ends. */
function scratch(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function prebuildAll(out: string, targets: string[] = [], env: NodeJS.ProcessEnv = process.env) {
  return spawnSync('sh', [SCRIPT, out, ...targets], { env, encoding: 'utf8', timeout: 300_000 });
}

describe.skipIf(!glibcLinux || skipWithout(...TOOLS))('scripts/prebuild-all.sh on Debian', () => {
  it('builds this architecture and the other, says what it cannot build, and leaves build/ alone', () => {
    requireTools(...TOOLS);
    const release = join(ROOT, 'build', 'Release', 'scan_backends.node');
    const before = existsSync(release) ? statSync(release).mtimeMs : undefined;
    const out = scratch('sb-prebuilds-');
    const run = prebuildAll(out);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const line = (arch: string) => `built   linux-${arch}-glibc: prebuilds/linux-${arch}/scan-backends.glibc.node`;
    expect(run.stdout.trimEnd().split('\n')).toEqual([
      line('x64'),
      line('arm64'),
      expect.stringMatching(/^cannot {2}linux-x64-musl here: no x86_64-linux-musl-g\+\+, .*musl-tools is C only/),
      expect.stringMatching(/^cannot {2}linux-arm64-musl here: no aarch64-linux-musl-g\+\+, .*node:20-alpine/),
      "cannot  darwin-arm64 here: needs macOS on Apple silicon: run 'npm run prebuild' there",
    ]);

    // This machine's prebuild is an addon of this tree: it loads, with the layout TS expects.
    const own = join(out, 'prebuilds', `linux-${host}`, 'scan-backends.glibc.node');
    const addon = createRequire(import.meta.url)(own) as { layout?: unknown };
    expect(layoutMismatch(addon.layout)).toBeUndefined();
    // The cross build cannot run here; its header says what it was built for.
    expect(elfArch(join(out, 'prebuilds', `linux-${other}`, 'scan-backends.glibc.node'))).toBe(other);
    expect(elfArch(own)).toBe(host);

    // Built in a copy: the tree's own source build is untouched.
    expect(existsSync(release) ? statSync(release).mtimeMs : undefined).toBe(before);
  }, 320_000);

  it('refuses a cross build that came out for the wrong architecture', () => {
    requireTools(...TOOLS);
    // A "musl cross compiler" that is the host's own: its output is a host binary.
    const bin = scratch('sb-fakecross-');
    const fake = other === 'arm64' ? 'aarch64-linux-musl' : 'x86_64-linux-musl';
    for (const [tool, real] of [
      ['gcc', 'gcc'],
      ['g++', 'g++'],
      ['strip', 'strip'],
    ]) {
      writeFileSync(join(bin, `${fake}-${tool}`), `#!/bin/sh\nexec ${real} "$@"\n`);
      chmodSync(join(bin, `${fake}-${tool}`), 0o755);
    }
    const out = scratch('sb-prebuilds-');
    const run = prebuildAll(out, [`linux-${other}-musl`], { ...process.env, PATH: `${bin}:${process.env.PATH}` });
    expect(run.stderr).toBe(
      `failed  linux-${other}-musl: ${out}/prebuilds/linux-${other}/scan-backends.musl.node is not an ${other} binary\n`,
    );
    expect(run.status).toBe(1);
    expect(run.stdout).toBe('');
  }, 320_000);

  it('names the targets it knows when asked for another', () => {
    const run = prebuildAll(scratch('sb-prebuilds-'), ['linux-riscv64-glibc']);
    expect(run.stderr).toBe(
      'prebuild-all: unknown target "linux-riscv64-glibc"; expected one of: linux-x64-glibc linux-arm64-glibc linux-x64-musl linux-arm64-musl darwin-arm64\n',
    );
    expect(run.status).toBe(2);
  });
});
