// Where no addon is found (a platform without a prebuild, no compiler at install), the JS engine
// runs and says so: the message names the prebuild the loader looked for, so a user on
// linux-arm64 with musl knows that is what was missing (issue 22).
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, describe, expect, it, vi } from 'vitest';

import { prebuildPlatform } from '../../lib/scan/addon/load.js';

describe('prebuildPlatform', () => {
  it.each([
    [{ npm_config_platform: 'linux', npm_config_arch: 'x64' }, false, 'linux-x64-glibc'],
    [{ npm_config_platform: 'linux', npm_config_arch: 'arm64' }, true, 'linux-arm64-musl'],
    [{ npm_config_platform: 'linux', npm_config_arch: 'arm64', LIBC: 'musl' }, false, 'linux-arm64-musl'],
    [{ npm_config_platform: 'darwin', npm_config_arch: 'arm64' }, false, 'darwin-arm64'],
  ])('names %j (Alpine: %s) %s', (env, alpine, expected) => {
    expect(prebuildPlatform(env, alpine)).toBe(expected);
  });

  it('names this machine by default', () => {
    expect(prebuildPlatform()).toMatch(new RegExp(`^${process.platform}-${process.arch}(-glibc|-musl)?$`));
  });
});

describe('a package with no addon for this platform', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.resetModules();
  });

  /** A package root with a prebuild for linux-x64 only and no build/, made node-gyp-build's. */
  function packageWithX64PrebuildOnly(): void {
    const root = mkdtempSync(join(tmpdir(), 'sb-noaddon-'));
    writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'scan-backends' }));
    mkdirSync(join(root, 'prebuilds', 'linux-x64'), { recursive: true });
    writeFileSync(join(root, 'prebuilds', 'linux-x64', 'scan-backends.glibc.node'), 'not loaded');
    // node-gyp-build's own override of the package root: <NAME>_PREBUILD.
    vi.stubEnv('SCAN_BACKENDS_PREBUILD', root);
    vi.stubEnv('SCAN_BACKENDS_ADDON_PATH', '');
    vi.stubEnv('npm_config_platform', 'linux');
    vi.stubEnv('npm_config_arch', 'arm64');
    vi.stubEnv('LIBC', 'musl');
    // node-gyp-build reads the platform when it is first required: a fresh copy reads ours.
    const cache = createRequire(import.meta.url).cache;
    for (const key of Object.keys(cache)) if (key.includes('node-gyp-build')) delete cache[key];
    vi.resetModules();
  }

  it('is a NativeUnavailableError naming the prebuild it looked for', async () => {
    packageWithX64PrebuildOnly();
    const { loadBinding } = await import('../../lib/scan/addon/load.js');
    const loaded = loadBinding();
    expect(loaded.binding).toBeUndefined();
    expect(loaded.error).toMatchObject({ code: 'SB_NATIVE_UNAVAILABLE' });
    expect(loaded.error?.message).toBe(
      'no prebuild for linux-arm64-musl in prebuilds/ and no source build in build/Release',
    );
    // The name is the one node-gyp-build looked for, not a guess of our own.
    expect((loaded.error?.cause as Error).message).toMatch(/platform=linux arch=arm64 .*libc=musl/);
  });

  it("is what 'auto' says when it falls back to the JS engine, and what 'native' refuses with", async () => {
    packageWithX64PrebuildOnly();
    const { selectEngine } = await import('../../lib/scan/engines/choose.js');
    const selection = selectEngine('auto');
    expect(selection.scanner.name).toBe('js');
    expect(selection.fallbackReason).toBe(
      'native addon unavailable (no prebuild for linux-arm64-musl in prebuilds/ and no source build in build/Release)',
    );
    expect(() => selectEngine('native')).toThrow(/^native engine unavailable: no prebuild for linux-arm64-musl /);
  });
});
