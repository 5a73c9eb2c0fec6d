import { describe, expect, it } from 'vitest';

import { progressLine } from '../../lib/cli/progress.js';

describe('the progress line', () => {
  it('moves with elapsed time while nothing answers, and says done/total, open and in flight', () => {
    const source = { total: () => 65534, window: () => 16384, retries: 0 };
    const early = progressLine(1200, 0, 0, source);
    const later = progressLine(2400, 0, 0, source);
    expect(early).not.toBe(later);
    expect(later).toBe('[....................] 2.4 s, 0/65534 done, 0 open, ~16384 in flight ');
    expect(progressLine(3000, 65000, 2, source)).toBe(
      '[####################] 3.0 s, 65000/65534 done, 2 open, ~534 in flight ',
    );
  });

  it('names the attempts when --retries is on, and waits for a total it does not know', () => {
    expect(progressLine(1500, 10, 1, { total: () => undefined, window: () => undefined, retries: 2 })).toBe(
      '[....................] 1.5 s, 10/? done, 1 open, ~? in flight, up to 3 attempts each ',
    );
  });
});
