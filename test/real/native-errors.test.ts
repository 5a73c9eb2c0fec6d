import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { NativeScanError } from '../../lib/common/errors.js';
import { EXPECTED_LAYOUT } from '../../lib/scan/addon/load.js';
import { scanAll } from '../../lib/scan/job.js';
import { runCli } from '../helpers/cli.js';
import { closedPort, countFds } from '../helpers/net.js';

describe('native engine start-up errors', () => {
  it.runIf(process.platform === 'linux')(
    'a poller this OS lacks rejects with SB_POLLER_FAILED and opens nothing',
    async () => {
      const before = countFds();
      const error = await scanAll('127.0.0.1', { engine: 'native', poller: 'kqueue' }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(NativeScanError);
      expect(error).toMatchObject({ code: 'SB_POLLER_FAILED' });
      expect((error as Error).message).toContain('could not create the event poller');
      expect(countFds()).toBe(before);
    },
  );

  it('an unknown backend name is an option error', async () => {
    // @ts-expect-error: checking the run-time guard for JS callers
    await expect(scanAll('127.0.0.1', { backend: 'select' })).rejects.toMatchObject({
      code: 'SB_INVALID_OPTION',
      message: 'backend: must be auto, epoll, kqueue or poll, got "select"',
    });
  });
});

describe('an addon built for another record layout', () => {
  it('is refused at load: --engine native exits 3 naming the difference, auto falls back to js saying why', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-addon-'));
    const addon = join(dir, 'stale.cjs');
    // A stand-in with the wrong endpoint record size: it must never be handed a target table.
    writeFileSync(
      addon,
      `module.exports = { Scan: function () { throw new Error('must not be called'); }, fdLimit: () => 1024,
        layout: ${JSON.stringify({ ...EXPECTED_LAYOUT, endpointRecordSize: 32 })} };`,
    );
    const env = { SCAN_BACKENDS_ADDON_PATH: addon };
    const port = await closedPort('127.0.0.36');
    const native = await runCli(['scan', '127.0.0.36', '-p', String(port), '--engine', 'native'], { env });
    expect(native.code).toBe(3);
    expect(native.stderr).toContain(
      'the native addon does not match this package (endpointRecordSize 32, expected 24)',
    );
    const auto = await runCli(['scan', '127.0.0.36', '-p', String(port), '--format', 'json'], { env });
    expect(auto.code).toBe(1);
    expect(auto.stderr).toContain('using the js engine: native addon unavailable (the native addon does not match');
    expect(JSON.parse(auto.stdout)).toMatchObject({ engine: 'js', results: [{ state: 'closed' }] });
  });
});
