// Every value TS and the C++ core both know (record sizes, ids, names) is compared at load: the
// addon reports its tables (`layout` in native/binding.cc) and the loader refuses one that
// differs from the TS constants. These tests drift one mirror at a time through a fake layout,
// and check the addon built from this tree against the constants. The build files' one list
// of core sources (native/core-sources.txt) is checked here too.
import { execSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterEach, describe, expect, it, vi } from 'vitest';

import { EXPECTED_LAYOUT, layoutMismatch, type NativeLayout } from '../../lib/scan/addon/load.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The addon node-gyp-build picks at the package root (build/Release, else prebuilds/), if any. */
function packageAddon(): string | undefined {
  try {
    return (createRequire(import.meta.url)('node-gyp-build') as { path(dir: string): string }).path(ROOT);
  } catch {
    return undefined;
  }
}

/** A copy of what the loader expects, with lists and keys in another order (still a match). */
function reordered(): Record<string, unknown> {
  const copy: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(EXPECTED_LAYOUT).reverse()) {
    if (Array.isArray(value)) copy[key] = [...(value as unknown[])].reverse();
    else if (typeof value === 'object') copy[key] = Object.fromEntries(Object.entries(value).reverse());
    else copy[key] = value;
  }
  return copy;
}

const drifts: [string, Partial<Record<keyof NativeLayout, unknown>>, string][] = [
  ['a step outcome the TS union lacks', { outcomes: [...EXPECTED_LAYOUT.outcomes, 'refused'] }, 'outcomes ['],
  ['a renamed probe kind', { probeKinds: ['ggml-rpc', 'grpc-health'] }, 'probeKinds ["ggml-rpc","grpc-health"]'],
  ['a poller TS does not offer', { pollers: [...EXPECTED_LAYOUT.pollers, 'io_uring'] }, 'pollers ['],
  ['a status code TS does not know', { statuses: [...EXPECTED_LAYOUT.statuses, 'SB_NEW'] }, 'statuses ['],
  [
    'another ggml-rpc command id',
    { ggmlRpcCommands: { ...EXPECTED_LAYOUT.ggmlRpcCommands, HELLO: 13 } },
    'ggmlRpcCommands {"GET_DEVICE_MEMORY":11,"HELLO":13,"DEVICE_COUNT":15}',
  ],
  ['a missing ggml-rpc command', { ggmlRpcCommands: { HELLO: 14 } }, 'ggmlRpcCommands {"HELLO":14}'],
  ['a build without adaptive timing', { timings: ['fixed'] }, 'timings ["fixed"]'],
  ['another plan id', { plans: { ...EXPECTED_LAYOUT.plans, grpc: 5 } }, 'plans {'],
  ['another newest known major', { newestKnownMajor: 8 }, 'newestKnownMajor 8, expected 7'],
  ['another record size', { endpointRecordSize: 32 }, 'endpointRecordSize 32, expected 24'],
  ['a field an older build lacks', { outcomes: undefined }, 'outcomes undefined, expected ['],
];

describe('the loader compares the addon layout with the TS constants', () => {
  it('accepts the expected layout, whatever the order of its lists and keys', () => {
    expect(layoutMismatch({ ...EXPECTED_LAYOUT })).toBeUndefined();
    expect(layoutMismatch(reordered())).toBeUndefined();
  });

  it.each(drifts)('refuses %s, naming that field alone', (_, drift, named) => {
    const mismatch = layoutMismatch({ ...EXPECTED_LAYOUT, ...drift });
    expect(mismatch).toContain(named);
    const field = Object.keys(drift)[0] as string;
    expect(mismatch?.startsWith(`${field} `)).toBe(true);
    expect(mismatch).not.toContain(';');
  });

  it('refuses an addon that reports no layout at all', () => {
    expect(layoutMismatch(undefined)).toBe('it reports no record layout (an older build)');
    expect(layoutMismatch(null)).toBe('it reports no record layout (an older build)');
  });

  it('expects every name list the core reports', () => {
    expect(Object.keys(EXPECTED_LAYOUT).sort()).toEqual(
      [
        'endpointRecordSize',
        'ggmlRpcCommands',
        'newestKnownMajor',
        'outcomes',
        'plans',
        'pollers',
        'probeKinds',
        'resultRecordSize',
        'statuses',
        'timedOut',
        'timings',
      ].sort(),
    );
  });
});

describe('loadBinding refuses an addon whose names drifted', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.resetModules();
  });

  it('is a NativeUnavailableError naming the field and saying how to rebuild', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-layout-'));
    const addon = join(dir, 'drifted.cjs');
    const layout = { ...EXPECTED_LAYOUT, outcomes: [...EXPECTED_LAYOUT.outcomes, 'refused'] };
    writeFileSync(
      addon,
      `module.exports = { Scan: function () { throw new Error('must not be called'); }, fdLimit: () => 1024,
        layout: ${JSON.stringify(layout)} };`,
    );
    vi.stubEnv('SCAN_BACKENDS_ADDON_PATH', addon);
    vi.resetModules();
    const { loadBinding } = await import('../../lib/scan/addon/load.js');
    const loaded = loadBinding();
    expect(loaded.binding).toBeUndefined();
    // A fresh module graph: its own NativeUnavailableError class, so match on the code.
    expect(loaded.error).toMatchObject({ code: 'SB_NATIVE_UNAVAILABLE' });
    expect(loaded.error?.message).toMatch(
      /^the native addon does not match this package \(outcomes \[.*"refused"\], expected \[.*\]\); rebuild it with "npm run build:native"$/,
    );
  });
});

describe('the addon built from this tree', () => {
  // scripts/test.sh builds (npm pack: prebuilds/) before the unit tests; a bare checkout has
  // no addon to ask.
  const built = packageAddon();
  const skip = built === undefined && process.env.CI !== 'true';
  it.skipIf(skip)('reports, from the C++ tables, exactly what TS expects', () => {
    const addon = createRequire(import.meta.url)(built as string) as { layout?: unknown };
    expect(layoutMismatch(addon.layout)).toBeUndefined();
  });

  it.skipIf(skip)('is what loadBinding finds from the package root (build/Release, else prebuilds/)', async () => {
    vi.stubEnv('SCAN_BACKENDS_ADDON_PATH', '');
    vi.resetModules();
    const { loadBinding } = await import('../../lib/scan/addon/load.js');
    const loaded = loadBinding();
    expect(loaded.error).toBeUndefined();
    expect(loaded.binding?.layout).toEqual(createRequire(import.meta.url)(built as string).layout);
    vi.unstubAllEnvs();
    vi.resetModules();
  });
});

describe('one list of core sources feeds binding.gyp and CMakeLists.txt', () => {
  const listFile = join(ROOT, 'native', 'core-sources.txt');
  const listed = readFileSync(listFile, 'utf8')
    .split('\n')
    .filter((line) => /^[^#]/.test(line));

  it('names every core .cc but the per-OS pollers, once', () => {
    const perOs = ['poller_epoll.cc', 'poller_kqueue.cc'];
    const onDisk = readdirSync(join(ROOT, 'native', 'core'))
      .filter((name) => name.endsWith('.cc') && !perOs.includes(name))
      .map((name) => `native/core/${name}`);
    expect([...listed].sort()).toEqual(onDisk.sort());
    expect(new Set(listed).size).toBe(listed.length);
  });

  it("is what binding.gyp's command expansion yields, and gyp lists no common core source itself", () => {
    const gyp = readFileSync(join(ROOT, 'binding.gyp'), 'utf8');
    const command = /"<!@\((node -p .*core-sources\.txt.*)\)"/.exec(gyp)?.[1];
    expect(command).toBeDefined();
    // The gyp file is a Python literal: \" and \\ are its escapes; gyp runs the command in a shell.
    const shellCommand = (command as string).replace(/\\(["\\])/g, '$1');
    const expanded = execSync(shellCommand, { cwd: ROOT, encoding: 'utf8' }).trim().split(/\s+/);
    expect(expanded).toEqual(listed);
    for (const source of listed) expect(gyp).not.toContain(`"${source}"`);
  });

  it('is what CMakeLists.txt reads, and CMake lists no common core source itself', () => {
    const cmake = readFileSync(join(ROOT, 'CMakeLists.txt'), 'utf8');
    expect(cmake).toMatch(/file\(STRINGS native\/core-sources\.txt CORE_SOURCES REGEX "\^\[\^#\]"\)/);
    for (const source of listed) expect(cmake).not.toContain(source);
  });

  it('ships in the package, so a source build from the tarball finds it', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { files: string[] };
    expect(pkg.files).toContain('native/core-sources.txt');
  });
});
