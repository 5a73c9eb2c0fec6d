// One option normaliser: every option of a scan is checked when the scan is created, before
// a name is resolved, and a wrong type from plain JavaScript is an InvalidOptionError that
// names the option, never a TypeError from deep inside.
import { describe, expect, it } from 'vitest';

import { systemLookup } from '../../lib/common/addresses.js';
import { InvalidOptionError } from '../../lib/common/errors.js';
import { normalizeResolveOptions, normalizeScanOptions, type ScanOptions } from '../../lib/common/options.js';
import { resolveBackends } from '../../lib/resolver/index.js';
import { scan, scanAll } from '../../lib/scan/job.js';
import { resolveTargets } from '../../lib/scan/targets/grammar.js';

const cases: [string, Record<string, unknown>, string][] = [
  ['a Symbol timeout', { timeoutMs: Symbol('x') }, 'timeoutMs: must be an integer 1..3600000, got a symbol'],
  ['a null concurrency', { concurrency: null }, 'concurrency: must be an integer 1..1000000, got null'],
  ['an object for retries', { retries: {} }, 'retries: must be an integer 0..10, got an object'],
  ['a string rate', { rate: '5' }, 'rate: must be a number >= 0 (0: unlimited), got "5"'],
  ['a signal that is no AbortSignal', { signal: { aborted: false } }, 'signal: must be an AbortSignal, got an object'],
  ['an exclude that is no list', { exclude: 42 }, 'exclude: must be a string or a list of strings, got 42'],
  ['ports of the wrong kind', { ports: { p: 1 } }, 'ports: must be a number, a list of numbers'],
  [
    'the string "false" as a safety switch',
    { allowPublic: 'false' },
    'allowPublic: must be true or false, got "false"',
  ],
  ['an unknown engine', { engine: 'rust' }, 'engine: must be auto, native or js, got "rust"'],
  ['a grpcService that is no string', { grpcService: 5 }, 'grpcService: must be a string, got 5'],
  ['an rpcVersion that is no version', { rpcVersion: '5' }, 'rpcVersion: must be "major.minor.patch", got "5"'],
];

describe('scan options are checked once, first', () => {
  it.each(cases)('%s is an InvalidOptionError naming the option, before any lookup', (_, options, message) => {
    let lookups = 0;
    const lookup = async () => {
      lookups++;
      return [];
    };
    let error: unknown;
    try {
      scan('backend.invalid', { ...options, lookup } as never);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidOptionError);
    expect((error as Error).message).toContain(message);
    expect(lookups).toBe(0);
  });

  it('scanAll, resolveTargets and resolveBackends reject the same way', async () => {
    await expect(scanAll('127.0.0.1', { timeoutMs: 0 })).rejects.toMatchObject({
      code: 'SB_INVALID_OPTION',
      message: 'timeoutMs: must be an integer 1..3600000, got 0',
    });
    await expect(resolveTargets('127.0.0.1', { exclude: Symbol('x') as never })).rejects.toMatchObject({
      code: 'SB_INVALID_OPTION',
    });
    await expect(resolveBackends({ sources: ['config'], probeTimeoutMs: 0 })).rejects.toMatchObject({
      message: 'probeTimeoutMs: must be an integer 1..600000, got 0',
    });
    await expect(resolveBackends({ sources: ['config'], signal: 'stop' as never })).rejects.toMatchObject({
      message: 'signal: must be an AbortSignal, got "stop"',
    });
  });

  it('targets that are neither a string nor a list of strings are named', () => {
    expect(() => scan(5 as never)).toThrow('targets: must be a string or a list of strings, got 5');
  });
});

describe('every default is filled once, where the option enters', () => {
  it('normalizeScanOptions fills what a scan runs with, and the job keeps it', () => {
    const job = scan('127.0.0.1', { engine: 'js', rpcVersion: null });
    expect(job.settings).toMatchObject({
      timing: 'adaptive',
      timeoutMs: 1000,
      minRttTimeoutMs: 30,
      probeTimeoutMs: 2000,
      retries: 1,
      rate: 0,
      grpcService: '',
      engine: 'js',
      poller: 'auto',
      probe: false,
      rpcVersion: undefined,
      lookup: systemLookup,
    });
    expect(job.settings.concurrency).toBeUndefined(); // from the descriptor limit at start
  });

  it('adaptive timing by default; an explicit timeout alone is a fixed one, as it always was', () => {
    const timing = (o: ScanOptions) => {
      const { timing: mode, timeoutMs, minRttTimeoutMs, retries } = normalizeScanOptions(o);
      return { mode, timeoutMs, minRttTimeoutMs, retries };
    };
    expect(timing({})).toEqual({ mode: 'adaptive', timeoutMs: 1000, minRttTimeoutMs: 30, retries: 1 });
    expect(timing({ timeoutMs: 300 })).toEqual({ mode: 'fixed', timeoutMs: 300, minRttTimeoutMs: 300, retries: 0 });
    expect(timing({ timing: 'fixed' })).toEqual({ mode: 'fixed', timeoutMs: 1000, minRttTimeoutMs: 1000, retries: 0 });
    // With timing 'adaptive', timeoutMs is the ceiling; a ceiling below the default floor lowers it.
    expect(timing({ timing: 'adaptive', timeoutMs: 300 })).toMatchObject({ timeoutMs: 300, minRttTimeoutMs: 30 });
    expect(timing({ maxRttTimeoutMs: 20 })).toMatchObject({ mode: 'adaptive', timeoutMs: 20, minRttTimeoutMs: 20 });
    // Beside a floor or a ceiling, an explicit timeout is adaptive timing's ceiling, not a fixed one.
    expect(timing({ timeoutMs: 500, maxRttTimeoutMs: 500 })).toMatchObject({ mode: 'adaptive', timeoutMs: 500 });
    expect(timing({ timeoutMs: 500, minRttTimeoutMs: 20 })).toEqual({
      mode: 'adaptive',
      timeoutMs: 500,
      minRttTimeoutMs: 20,
      retries: 1,
    });
    expect(timing({ minRttTimeoutMs: 5, maxRttTimeoutMs: 400, retries: 3 })).toEqual({
      mode: 'adaptive',
      timeoutMs: 400,
      minRttTimeoutMs: 5,
      retries: 3,
    });
    // Settings handed on (the resolver's to its scans) give the same timing again.
    const fixed = normalizeScanOptions({ timeoutMs: 300 });
    expect(
      timing({ timing: fixed.timing, timeoutMs: fixed.timeoutMs, minRttTimeoutMs: fixed.minRttTimeoutMs }),
    ).toEqual(timing({ timeoutMs: 300 }));
    expect(normalizeResolveOptions({}).timing).toBe('adaptive');
    expect(normalizeResolveOptions({ timeoutMs: 500 })).toMatchObject({ timing: 'fixed', timeoutMs: 500 });
  });

  it('refuses timing options that contradict each other', () => {
    expect(() => normalizeScanOptions({ timing: 'slow' as never })).toThrow(
      'timing: must be adaptive or fixed, got "slow"',
    );
    expect(() => normalizeScanOptions({ minRttTimeoutMs: 0 })).toThrow(
      'minRttTimeoutMs: must be an integer 1..3600000',
    );
    expect(() => normalizeScanOptions({ minRttTimeoutMs: 600, maxRttTimeoutMs: 500 })).toThrow(
      'minRttTimeoutMs (--min-rtt-timeout): the floor (600 ms) must not exceed the ceiling (500 ms)',
    );
    expect(() => normalizeScanOptions({ timing: 'fixed', timeoutMs: 300, minRttTimeoutMs: 10 })).toThrow(
      'minRttTimeoutMs (--min-rtt-timeout): only with adaptive timing',
    );
    expect(() => normalizeScanOptions({ timing: 'adaptive', timeoutMs: 300, maxRttTimeoutMs: 400 })).toThrow(
      'maxRttTimeoutMs (--max-rtt-timeout): the ceiling, also given as timeoutMs (--timeout): 400 ≠ 300',
    );
    expect(() => normalizeResolveOptions({ timing: 'fixed', maxRttTimeoutMs: 10 })).toThrow(InvalidOptionError);
  });

  it('reads $SCAN_BACKENDS_RPC_VERSION and $SCAN_BACKENDS_REDIS in the normalizer', () => {
    const saved = { ...process.env };
    try {
      process.env.SCAN_BACKENDS_RPC_VERSION = '3.6.1';
      process.env.SCAN_BACKENDS_REDIS = 'redis://127.0.0.1:1';
      expect(normalizeScanOptions({}).rpcVersion).toBe('3.6.1');
      expect(normalizeScanOptions({ rpcVersion: null }).rpcVersion).toBeUndefined();
      expect(normalizeResolveOptions({}).redisUrl).toBe('redis://127.0.0.1:1');
      process.env.SCAN_BACKENDS_REDIS = 'http://x';
      expect(() => normalizeResolveOptions({})).toThrow('$SCAN_BACKENDS_REDIS: must be redis://host:port');
    } finally {
      process.env = saved;
    }
  });

  it('takes the old option name `backend` for the poller, once with a deprecation warning', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      expect(normalizeScanOptions({ backend: 'poll' }).poller).toBe('poll');
      expect(normalizeScanOptions({ backend: 'poll' }).poller).toBe('poll');
      expect(normalizeScanOptions({ poller: 'epoll' }).poller).toBe('epoll');
      expect(() => normalizeScanOptions({ poller: 'epoll', backend: 'poll' })).toThrow(InvalidOptionError);
      expect(() => normalizeScanOptions({ poller: 'select' as never })).toThrow(
        'poller: must be auto, epoll, kqueue or poll, got "select"',
      );
      await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on a later tick
      expect(warnings.filter((m) => m.includes('`backend` is now `poller`'))).toHaveLength(1);
    } finally {
      process.off('warning', onWarning);
    }
  });
});
