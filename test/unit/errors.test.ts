import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import {
  ClaimTakenError,
  GgufError,
  InvalidOptionError,
  InvalidTargetError,
  NativeScanError,
  NativeUnavailableError,
  ScanAbortedError,
  ScanBackendsError,
  SourceUnavailableError,
} from '../../lib/common/errors.js';

// Every error class with the name and code the README promises. Codes are the contract.
const table: [error: ScanBackendsError, name: string, code: string, message: string][] = [
  [
    new InvalidTargetError('10.0.0.0/33', '10.0.0.0/33: prefix must be 0..32'),
    'InvalidTargetError',
    'SB_INVALID_TARGET',
    '10.0.0.0/33: prefix must be 0..32',
  ],
  [
    new InvalidOptionError('timeoutMs: must be an integer 1..3600000, got 0'),
    'InvalidOptionError',
    'SB_INVALID_OPTION',
    'timeoutMs: must be an integer 1..3600000, got 0',
  ],
  [
    new NativeUnavailableError('native engine unavailable: no build'),
    'NativeUnavailableError',
    'SB_NATIVE_UNAVAILABLE',
    'native engine unavailable: no build',
  ],
  [
    new NativeScanError('native scan did not start', 'SB_POLLER_FAILED'),
    'NativeScanError',
    'SB_POLLER_FAILED',
    'native scan did not start',
  ],
  [
    new ScanAbortedError('scan deadline of 200 ms reached'),
    'AbortError',
    'SB_ABORTED',
    'scan deadline of 200 ms reached',
  ],
  [
    new SourceUnavailableError('Redis unavailable at redis://127.0.0.1:1'),
    'SourceUnavailableError',
    'SB_SOURCE_UNAVAILABLE',
    'Redis unavailable at redis://127.0.0.1:1',
  ],
  [
    new ClaimTakenError(
      '127.0.0.1:50052',
      { watcher: 'w', host: 'h' },
      '127.0.0.1:50052 is held by the coordinator of watcher w on host h',
    ),
    'ClaimTakenError',
    'SB_CLAIM_TAKEN',
    '127.0.0.1:50052 is held by the coordinator of watcher w on host h',
  ],
  [new GgufError('model.gguf', 4, 'GGUF version 1'), 'GgufError', 'SB_GGUF', 'model.gguf: byte 4: GGUF version 1'],
];

describe('errors', () => {
  it.each(table)('%s has its name, code and message', (error, name, code, message) => {
    expect(error.name).toBe(name);
    expect(error.code).toBe(code);
    expect(error.message).toBe(message);
    expect(error).toBeInstanceOf(ScanBackendsError);
    expect(error).toBeInstanceOf(Error);
  });

  it('recognises an error from another copy of the package as a ScanBackendsError', () => {
    const foreign = Object.assign(new Error('x'), { code: 'SB_X' });
    Object.defineProperty(foreign, Symbol.for('scan-backends.error'), { value: true });
    expect(foreign).toBeInstanceOf(ScanBackendsError);
    expect(new Error('plain')).not.toBeInstanceOf(ScanBackendsError);
  });

  it('keeps subclass checks exact', () => {
    expect(new InvalidTargetError('t', 'm')).not.toBeInstanceOf(InvalidOptionError);
    expect(new InvalidTargetError('t', 'm').token).toBe('t');
  });

  it('carries the cause', () => {
    const cause = new Error('ENOTFOUND');
    expect(new InvalidTargetError('h', 'h: name does not resolve', { cause }).cause).toBe(cause);
  });
});

describe('the README lists every error code', () => {
  it('names each code the library and the native core can produce, and no other', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('### Errors'), readme.indexOf('## Network safety'));
    const documented = new Set(section.match(/SB_[A-Z_]+/g));
    const statusTable = readFileSync(new URL('../../native/core/status.hh', import.meta.url), 'utf8');
    const nativeCodes = [...statusTable.matchAll(/X\(k\w+, "(SB_[A-Z_]+)"/g)]
      .map((m) => m[1])
      .filter((c) => c !== 'SB_OK');
    const produced = new Set([
      ...table.map(([error]) => error.code).filter((c) => c !== 'SB_POLLER_FAILED'),
      ...nativeCodes,
    ]);
    expect(documented).toEqual(produced);
  });
});
