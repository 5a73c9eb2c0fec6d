// The watcher's options are normalised once: normalizeWatchOptions() checks them with the
// messages the watcher always gave and fills every default, the environment's included; the
// Watcher keeps the result, read-only, as `settings`. Constructing a Watcher does no I/O.
import { afterEach, describe, expect, it, vi } from 'vitest';

import { systemLookup } from '../../lib/common/addresses.js';
import { InvalidOptionError } from '../../lib/common/errors.js';
import { DEFAULT_SOURCES, normalizeWatchOptions, WATCH_DEFAULTS } from '../../lib/common/options.js';
import { Watcher } from '../../lib/watch/watcher.js';

afterEach(() => vi.unstubAllEnvs());

describe('normalizeWatchOptions', () => {
  it('fills every default once', () => {
    vi.stubEnv('SCAN_BACKENDS_REDIS', '');
    vi.stubEnv('SCAN_BACKENDS_RPC_VERSION', '');
    vi.stubEnv('SCAN_BACKENDS_ENGINE', '');
    expect(normalizeWatchOptions({})).toEqual({
      ...WATCH_DEFAULTS,
      sources: DEFAULT_SOURCES,
      merge: false,
      verify: true,
      strict: false,
      requireRedis: false,
      allowPublic: false,
      allowLinkLocal: false,
      acceptSilent: false,
      trustAllUsers: false,
      timing: 'adaptive',
      timeoutMs: 1000,
      minRttTimeoutMs: 30,
      probeTimeoutMs: 2000,
      redisUrl: undefined,
      redisTtlSeconds: 300,
      dnsSdWaitMs: 1500,
      engine: 'auto',
      rpcVersion: null,
      lookup: systemLookup,
      configSearch: expect.arrayContaining(['/etc/scan-backends/rpc_backends.conf']),
    });
  });

  it('keeps what was given, and reads the environment only where nothing was', () => {
    vi.stubEnv('SCAN_BACKENDS_REDIS', 'redis://127.0.0.1:1');
    vi.stubEnv('SCAN_BACKENDS_RPC_VERSION', '5.1.0');
    const settings = normalizeWatchOptions({ intervalMs: 1000, failAfter: 1, sources: ['config'] });
    expect(settings).toMatchObject({
      intervalMs: 1000,
      failAfter: 1,
      healthIntervalMs: WATCH_DEFAULTS.healthIntervalMs,
      sources: ['config'],
      redisUrl: 'redis://127.0.0.1:1',
      rpcVersion: '5.1.0',
    });
    const given = normalizeWatchOptions({ redisUrl: 'redis://127.0.0.2:2', rpcVersion: '4.0.0' });
    expect(given).toMatchObject({ redisUrl: 'redis://127.0.0.2:2', rpcVersion: '4.0.0' });
  });

  it('refuses a $SCAN_BACKENDS_REDIS that is no Redis URL, naming the variable, before any I/O', () => {
    vi.stubEnv('SCAN_BACKENDS_REDIS', 'http://127.0.0.1:6379');
    expect(() => normalizeWatchOptions({})).toThrow('$SCAN_BACKENDS_REDIS: must be redis://host:port');
  });

  it.each([
    [{ failAfter: 0 }, 'failAfter: must be an integer 1..1000, got 0'],
    [{ intervalMs: 50 }, 'intervalMs: must be an integer 100..86400000, got 50'],
    [{ freeMemoryFraction: 2 }, 'freeMemoryFraction: must be a number in (0, 1], got 2'],
    [{ fleetKey: Buffer.alloc(8) }, 'fleetKey: must be a Buffer of at least 16 bytes'],
    [{ rpcVersion: '5' }, 'rpcVersion: must be "major.minor.patch", got "5"'],
    [{ sources: [] }, 'sources: must be a non-empty list of process, config, scan, redis'],
  ])('refuses %o with the watcher’s message', (options, message) => {
    expect(() => normalizeWatchOptions(options as never)).toThrow(InvalidOptionError);
    expect(() => normalizeWatchOptions(options as never)).toThrow(message);
  });
});

describe('Watcher.settings', () => {
  it('is the normalised options, frozen, from a watcher not started', () => {
    vi.stubEnv('SCAN_BACKENDS_REDIS', '');
    const watcher = new Watcher({ healthIntervalMs: 250, sources: ['config'] });
    expect(watcher.settings).toMatchObject({
      healthIntervalMs: 250,
      intervalMs: WATCH_DEFAULTS.intervalMs,
      eventRingSize: WATCH_DEFAULTS.eventRingSize,
      sources: ['config'],
    });
    expect(Object.isFrozen(watcher.settings)).toBe(true);
  });

  it('hides the Redis password and leaves the fleet key out', () => {
    const watcher = new Watcher({
      redisUrl: 'redis://:s3cret@127.0.0.1:1',
      fleetKey: Buffer.alloc(16, 7),
      sources: ['config'],
    });
    expect(watcher.settings.redisUrl).toBe('redis://:***@127.0.0.1:1');
    expect('fleetKey' in watcher.settings).toBe(false);
    expect(JSON.stringify(watcher.settings)).not.toContain('s3cret');
  });

  it('runs the resolver’s checks first', () => {
    expect(() => new Watcher({ sources: [] })).toThrow(/^sources: must be a non-empty list/);
    expect(() => new Watcher({ timeoutMs: -1 })).toThrow(/timeoutMs: must be an integer 1\.\./);
  });
});
