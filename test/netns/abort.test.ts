// Stopping a scan: an AbortSignal, the deadline, and process teardown paths close every socket.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ScanAbortedError } from '../../lib/common/errors.js';
import { scan, scanAll } from '../../lib/scan/job.js';
import { countFds } from '../helpers/net.js';
import { clearFirewall, dropAllBut, enterIsolatedNamespace } from '../helpers/netns.js';

describe('abort and deadline', () => {
  beforeAll(() => {
    enterIsolatedNamespace();
    dropAllBut(50052, []); // every host of 127.0.0.0/8 is silent on 50052
  });
  afterAll(() => clearFirewall());

  for (const engine of ['native', 'js'] as const) {
    it(`${engine}: an abort mid-scan rejects with the signal's reason and leaves no socket open`, async () => {
      const before = countFds();
      const controller = new AbortController();
      const reason = new Error('operator pressed stop');
      setTimeout(() => controller.abort(reason), 100);
      const started = performance.now();
      await expect(scanAll('127.0.0.0/24', { engine, timeoutMs: 10_000, signal: controller.signal })).rejects.toBe(
        reason,
      );
      // Far below the 10 s timeout: the abort, not the timeout, ended the scan.
      expect(performance.now() - started).toBeLessThan(2000);
      expect(countFds()).toBe(before);
    });

    it(`${engine}: the deadline rejects with an AbortError (SB_ABORTED) and leaves no socket open`, async () => {
      const before = countFds();
      const error = await scanAll('127.0.0.0/24', { engine, timeoutMs: 10_000, deadlineMs: 200 }).catch(
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(ScanAbortedError);
      expect(error).toMatchObject({
        name: 'AbortError',
        code: 'SB_ABORTED',
        message: 'scan deadline of 200 ms reached',
      });
      expect(countFds()).toBe(before);
    });

    it(`${engine}: an abort before any result arrives ends the iteration too`, async () => {
      const before = countFds();
      const controller = new AbortController();
      const job = scan('127.0.0.0/24', { engine, timeoutMs: 10_000, signal: controller.signal });
      setTimeout(() => controller.abort(), 50);
      const seen: unknown[] = [];
      await expect(
        (async () => {
          for await (const r of job) seen.push(r);
        })(),
      ).rejects.toMatchObject({ name: 'AbortError' });
      expect(seen).toEqual([]);
      expect(countFds()).toBe(before);
    });
  }
});
