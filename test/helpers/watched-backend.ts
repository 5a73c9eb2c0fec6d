// A followed backend as the watcher's view holds it, for the unit tests of what renders or
// records that view: up, verified, usable, one ggml-rpc device of 24 GiB.
import type { WatchedBackend } from '../../lib/watch/types.js';

const GiB = 2 ** 30;

export function watchedBackend(
  host: string,
  { at, freeBytes }: { at: string; freeBytes: number },
  over: Partial<WatchedBackend> = {},
): WatchedBackend {
  return {
    host,
    port: 50052,
    state: 'up',
    sources: ['config'],
    verified: true,
    usable: true,
    addedAt: at,
    since: at,
    failures: 0,
    successes: 1,
    flaps: 0,
    rpc: {
      protocol: '3.0.0',
      usableBy: '>=3.0.0 <4.0.0',
      legacyHello: false,
      devices: [{ index: 0, freeBytes, totalBytes: 24 * GiB }],
    },
    ...over,
  };
}
