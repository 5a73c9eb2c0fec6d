// A bounded fuzz of the CLI's argv and of config contents: whatever a user types or a file
// holds, the answer is a usage error or a parse, never a crash from deep inside.
import { describe, expect, it } from 'vitest';

import { parseScanArgs } from '../../lib/cli/scan-command.js';
import { parseConfig } from '../../lib/resolver/config-file.js';
import { rng } from '../helpers/rng.js';

const PIECES = [
  '--timeout',
  '--ports',
  '-p',
  '--rate',
  '--probe',
  '--retries',
  '--exclude',
  '--format',
  '--engine',
  '--threads',
  '--deadline',
  '--allow-public',
  '--',
  '-',
  '0',
  '-5',
  '1e9',
  '',
  ' ',
  'json',
  'rust',
  '127.0.0.1/33',
  '300.1.1.1',
  '127.0.0.1-0',
  '::1',
  '[::1]',
  'a,,b',
  '65536',
  '\u0000',
  '\u001b[2J',
  'é',
  '127.0.0.1',
];

describe('input fuzz (bounded)', () => {
  it('2,000 random scan argv vectors end in a parse or a typed usage error', () => {
    const next = rng(0x5eed);
    for (let i = 0; i < 2000; i++) {
      const argv = Array.from(
        { length: 1 + Math.floor(next() * 6) },
        () => PIECES[Math.floor(next() * PIECES.length)] as string,
      );
      try {
        parseScanArgs(argv);
      } catch (error) {
        const code = (error as { code?: string }).code ?? '';
        const name = (error as Error).name;
        expect(
          name === 'UsageError' || code.startsWith('ERR_PARSE_ARGS') || code.startsWith('SB_'),
          `${JSON.stringify(argv)}: ${String(error)}`,
        ).toBe(true);
      }
    }
  });

  it('500 random config texts parse into candidates and bounded warnings, never a throw', () => {
    const next = rng(0xc0f1);
    const alphabet = 'ab.:[]#-0123456789 \t\r\n\u0000\u001b\u00ff,/rpc-version';
    for (let i = 0; i < 500; i++) {
      const text = Array.from(
        { length: Math.floor(next() * 400) },
        () => alphabet[Math.floor(next() * alphabet.length)],
      ).join('');
      const parsed = parseConfig(text, 'fuzz.conf');
      expect(parsed.warnings.length).toBeLessThanOrEqual(51);
      // eslint-disable-next-line no-control-regex
      for (const w of parsed.warnings) expect(w).not.toMatch(/[\u0000-\u0008\u001b]/);
    }
  });
});
