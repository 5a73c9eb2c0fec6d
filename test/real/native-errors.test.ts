import { describe, expect, it } from 'vitest';

import { NativeScanError } from '../../lib/errors.js';
import { scanAll } from '../../lib/scan.js';
import { countFds } from '../helpers/net.js';

describe('native engine start-up errors', () => {
  it.runIf(process.platform === 'linux')(
    'a poller backend this OS lacks rejects with SB_POLLER_FAILED and opens nothing',
    async () => {
      const before = countFds();
      const error = await scanAll('127.0.0.1', { engine: 'native', backend: 'kqueue' }).catch((e: unknown) => e);
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
      message: 'backend: must be auto, epoll, kqueue, poll, got select',
    });
  });
});
