// The published package, as a user installs it: the tarball `npm test` packs into .pack/
// (prebuild included), installed into a fresh project on a PATH where every compiler fails.
import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { beforeAll, describe, expect, it } from 'vitest';

import { prebuildPlatform } from '../../lib/scan/addon/load.js';
import { listen } from '../helpers/net.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
// Outside build/: the prebuild's node-gyp rebuild empties build/.
const PACK_DIR = join(ROOT, '.pack');
const TSC = join(ROOT, 'node_modules', '.bin', 'tsc');

function tarball(): string {
  const found = existsSync(PACK_DIR) ? readdirSync(PACK_DIR).filter((f) => f.endsWith('.tgz')) : [];
  if (found.length !== 1)
    throw new Error(`expected one tarball in ${PACK_DIR}: npm test packs it (npm pack --pack-destination .pack)`);
  return join(PACK_DIR, found[0] as string);
}

/** A PATH on which cc, c++, gcc, g++, clang, clang++ and make all fail. */
function noCompilerEnv(): NodeJS.ProcessEnv {
  const bin = mkdtempSync(join(tmpdir(), 'sb-nocc-'));
  for (const tool of ['cc', 'c++', 'gcc', 'g++', 'clang', 'clang++', 'make']) {
    writeFileSync(join(bin, tool), '#!/bin/sh\necho "no compiler here" >&2\nexit 1\n');
    chmodSync(join(bin, tool), 0o755);
  }
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `${bin}:${process.env.PATH}`,
    CC: join(bin, 'cc'),
    CXX: join(bin, 'c++'),
  };
  delete env.npm_config_build_from_source;
  delete env.SCAN_BACKENDS_ADDON_PATH;
  delete env.SCAN_BACKENDS_ENGINE;
  return env;
}

/** A fresh project with the tarball (and @types/node, for the type check) installed. */
function installInto(tgz: string, env: NodeJS.ProcessEnv): { dir: string; install: ReturnType<typeof spawnSync> } {
  const dir = mkdtempSync(join(tmpdir(), 'sb-consumer-'));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  const install = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tgz, '@types/node@20'], {
    cwd: dir,
    env,
    encoding: 'utf8',
    timeout: 180_000,
  });
  return { dir, install };
}

function run(dir: string, env: NodeJS.ProcessEnv, args: string[]) {
  return spawnSync(join(dir, 'node_modules', '.bin', 'scan-backends'), args, {
    cwd: dir,
    env,
    encoding: 'utf8',
    timeout: 30_000,
  });
}

describe('packing, as npm test does it', () => {
  it('left the addon of this tree where it was: the pack ran in a copy (issue 22)', () => {
    tarball(); // npm test packed
    // scripts/test.sh recorded each build/Release/*.node as "inode mtime path" before packing.
    const before = readFileSync(join(PACK_DIR, 'addon-before.txt'), 'utf8').trim().split('\n').filter(Boolean);
    const now = existsSync(join(ROOT, 'build', 'Release'))
      ? readdirSync(join(ROOT, 'build', 'Release'))
          .filter((f) => f.endsWith('.node'))
          .map((f) => {
            const path = join('build', 'Release', f);
            const stat = statSync(join(ROOT, path));
            return `${stat.ino} ${Math.floor(stat.mtimeMs / 1000)} ${path}`;
          })
      : [];
    expect(now).toEqual(before);
  });
});

describe('the npm package with its prebuild, on a machine without compilers', () => {
  let dir = '';
  const env = noCompilerEnv();
  beforeAll(() => {
    const result = installInto(tarball(), env);
    expect(result.install.status, String(result.install.stderr)).toBe(0);
    dir = result.dir;
  }, 200_000);

  it('loads the native engine from the prebuild and scans a loopback fixture', async () => {
    const { port } = await listen('127.0.0.211');
    writeFileSync(
      join(dir, 'use.mjs'),
      `import { scanAll } from 'scan-backends';
const r = await scanAll('127.0.0.210-212', { ports: ${port}, engine: 'native' });
console.log(JSON.stringify(r));`,
    );
    const out = spawnSync(process.execPath, ['use.mjs'], { cwd: dir, env, encoding: 'utf8' });
    expect(out.stderr).toBe('');
    const report = JSON.parse(out.stdout);
    expect(report.engine).toBe('native');
    expect(report.results.map((r: { state: string }) => r.state)).toEqual(['closed', 'open', 'closed']);
    expect(existsSync(join(dir, 'node_modules', 'scan-backends', 'build'))).toBe(false); // nothing was compiled
  });

  it('type-checks a TypeScript consumer against the published types', () => {
    writeFileSync(
      join(dir, 'consumer.ts'),
      `import { scan, probe, resolveBackends, type ScanResult, type Resolution, InvalidTargetError } from 'scan-backends';
const results: ScanResult[] = [];
for await (const r of scan('10.0.0.0/30', { ports: '50052,11434', timeoutMs: 500, probe: 'auto' })) results.push(r);
const p: ScanResult = await probe('10.0.0.1', 50052, { service: ['ggml-rpc', 'grpc'] });
const resolution: Resolution = await resolveBackends({ sources: ['config'], merge: true });
const code: string = new InvalidTargetError('x', 'x').code;
console.log(results.length, p.health, resolution.backends.length, code);
`,
    );
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noEmit: true,
          types: ['node'],
        },
        files: ['consumer.ts'],
      }),
    );
    const tsc = spawnSync(TSC, ['-p', dir], { encoding: 'utf8' });
    expect(tsc.stdout + tsc.stderr).toBe('');
    expect(tsc.status).toBe(0);
  });

  it('runs the scan-backends bin', async () => {
    const { port } = await listen('127.0.0.213');
    const out = run(dir, env, ['scan', '127.0.0.213', '-p', String(port), '--format', 'json']);
    expect(out.status).toBe(0);
    expect(JSON.parse(out.stdout)).toMatchObject({ schema: 1, engine: 'native', results: [{ state: 'open' }] });
  });
});

describe('the npm package with no prebuild and no compiler', () => {
  let dir = '';
  let installStderr = '';
  const env = noCompilerEnv();
  beforeAll(() => {
    // The same tarball without prebuilds/.
    const work = mkdtempSync(join(tmpdir(), 'sb-repack-'));
    execFileSync('tar', ['-xzf', tarball(), '-C', work]);
    rmSync(join(work, 'package', 'prebuilds'), { recursive: true, force: true });
    mkdirSync(join(work, 'out'));
    const bare = join(work, 'out', 'scan-backends-noprebuild.tgz');
    execFileSync('tar', ['-czf', bare, '-C', work, 'package']);
    const result = installInto(bare, env);
    installStderr = String(result.install.stderr);
    expect(result.install.status, installStderr).toBe(0);
    dir = result.dir;
  }, 200_000);

  it('still installs, and auto falls back to the JS engine saying why in one line', async () => {
    const { port } = await listen('127.0.0.214');
    const out = run(dir, env, ['scan', '127.0.0.214', '-p', String(port), '--format', 'json']);
    expect(out.status).toBe(0);
    expect(JSON.parse(out.stdout)).toMatchObject({ engine: 'js', results: [{ state: 'open' }] });
    const lines = out.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    // Naming the prebuild it looked for (issue 22).
    expect(lines[0]).toBe(
      `scan-backends: using the js engine: native addon unavailable (no prebuild for ${prebuildPlatform()} in prebuilds/ and no source build in build/Release)`,
    );
  });

  it('--engine native exits 3 saying why', () => {
    const out = run(dir, env, ['scan', '127.0.0.1', '--engine', 'native']);
    expect(out.status).toBe(3);
    expect(out.stderr).toMatch(/native engine unavailable: /);
  });
});
