import { describe, expect, it } from 'vitest';

import { classifyOutcome, defaultConcurrency } from '../../lib/scan/engines/index.js';

describe('classifyOutcome, the rule both engines share', () => {
  it.each([
    ['connected', { state: 'open' }],
    ['ECONNREFUSED', { state: 'closed' }],
    ['timeout', { state: 'filtered' }],
    ['ETIMEDOUT', { state: 'filtered' }],
    ['EHOSTUNREACH', { state: 'unreachable', error: 'EHOSTUNREACH' }],
    ['ENETUNREACH', { state: 'unreachable', error: 'ENETUNREACH' }],
    ['EADDRNOTAVAIL', { state: 'unreachable', error: 'EADDRNOTAVAIL' }],
    ['EACCES', { state: 'error', error: 'EACCES' }],
    ['EMFILE', { state: 'error', error: 'EMFILE' }],
  ])('%s -> %o', (outcome, expected) => {
    expect(classifyOutcome(outcome)).toEqual(expected);
  });
});

describe('defaultConcurrency', () => {
  it('leaves an eighth of the fd limit (at least 32) and caps at 16,384', () => {
    expect(defaultConcurrency(20_000)).toBe(16_384);
    expect(defaultConcurrency(1024)).toBe(896);
    expect(defaultConcurrency(128)).toBe(96);
    expect(defaultConcurrency(20)).toBe(1);
    expect(defaultConcurrency(null)).toBe(896);
  });
});
