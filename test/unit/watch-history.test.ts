// The watcher's last hour: a span per state change, memory samples per change, both bounded
// in time and in count, backends no longer followed forgotten.
import { describe, expect, it } from 'vitest';

import { HISTORY_WINDOW_MS, HistoryKeeper, MAX_HISTORY_BACKENDS } from '../../lib/watch/history.js';
import type { WatchedBackend } from '../../lib/watch/types.js';
import { watchedBackend } from '../helpers/watched-backend.js';

const GiB = 2 ** 30;

const backend = (host: string, over: Partial<WatchedBackend> = {}) =>
  watchedBackend(host, { at: new Date(0).toISOString(), freeBytes: 20 * GiB }, over);

const T0 = Date.parse('2026-01-01T00:00:00Z');

describe('the watcher history', () => {
  it('starts a span only when the state changes: up, busy, down', () => {
    const h = new HistoryKeeper();
    h.record([backend('127.0.0.1')], T0);
    h.record([backend('127.0.0.1')], T0 + 1000);
    h.record([backend('127.0.0.1', { health: 'busy' })], T0 + 2000);
    h.record([backend('127.0.0.1', { state: 'down', usable: false })], T0 + 3000);
    h.record([backend('127.0.0.1', { state: 'down', usable: false })], T0 + 4000);
    const view = h.view([backend('127.0.0.1')], T0 + 5000);
    expect(view.backends).toEqual([
      {
        backend: '127.0.0.1:50052',
        spans: [
          { state: 'up', from: '2026-01-01T00:00:00.000Z' },
          { state: 'busy', from: '2026-01-01T00:00:02.000Z' },
          { state: 'down', from: '2026-01-01T00:00:03.000Z' },
        ],
      },
    ]);
    expect(view).toMatchObject({ schema: 1, now: '2026-01-01T00:00:05.000Z', windowMs: HISTORY_WINDOW_MS });
  });

  it('keeps the span the window starts in, drops older ones, and caps a flapping backend at 240 spans', () => {
    const h = new HistoryKeeper();
    h.record([backend('127.0.0.1')], T0);
    h.record([backend('127.0.0.1', { state: 'down' })], T0 + 60_000);
    h.record([backend('127.0.0.1')], T0 + 120_000);
    const later = T0 + HISTORY_WINDOW_MS + 90_000;
    h.record([backend('127.0.0.1')], later);
    expect(h.view([backend('127.0.0.1')], later).backends[0]?.spans.map((s) => s.state)).toEqual(['down', 'up']);

    const flapping = new HistoryKeeper();
    for (let i = 0; i < 1000; i++) {
      flapping.record([backend('127.0.0.2', { state: i % 2 ? 'down' : 'up' })], T0 + i * 1000);
    }
    const spans = flapping.view([backend('127.0.0.2')], T0 + 1_000_000).backends[0]?.spans ?? [];
    expect(spans).toHaveLength(240);
    expect(spans.at(-1)).toEqual({ state: 'down', from: new Date(T0 + 999_000).toISOString() });
  });

  it('forgets a backend no longer followed', () => {
    const h = new HistoryKeeper();
    h.record([backend('127.0.0.1'), backend('127.0.0.2')], T0);
    h.record([backend('127.0.0.2')], T0 + 1000);
    h.record([backend('127.0.0.1'), backend('127.0.0.2')], T0 + 2000);
    const view = h.view([backend('127.0.0.1'), backend('127.0.0.2')], T0 + 3000);
    expect(view.backends.map((b) => [b.backend, b.spans[0]?.from])).toEqual([
      ['127.0.0.1:50052', '2026-01-01T00:00:02.000Z'],
      ['127.0.0.2:50052', '2026-01-01T00:00:00.000Z'],
    ]);
  });

  it('keeps a history for at most 1024 backends; one that leaves makes room for a new one', () => {
    const h = new HistoryKeeper();
    const host = (i: number) => `10.0.${i >> 8}.${i & 255}`;
    const views = Array.from({ length: MAX_HISTORY_BACKENDS + 10 }, (_, i) => backend(host(i)));
    h.record(views, T0);
    h.record(views, T0 + 1000);
    const drawn = h.view(views, T0 + 2000).backends.map((b) => b.backend);
    expect(MAX_HISTORY_BACKENDS).toBe(1024);
    expect(drawn).toHaveLength(MAX_HISTORY_BACKENDS);
    expect(drawn.at(-1)).toBe(`${host(MAX_HISTORY_BACKENDS - 1)}:50052`);
    // The first leaves: the first of the rest gets its place.
    h.record(views.slice(1), T0 + 3000);
    const after = h.view(views, T0 + 4000).backends.map((b) => b.backend);
    expect(after).toHaveLength(MAX_HISTORY_BACKENDS);
    expect(after[0]).toBe(`${host(1)}:50052`);
    expect(after.at(-1)).toBe(`${host(MAX_HISTORY_BACKENDS)}:50052`);
  });

  it('sums the usable set memory; a run of equal samples is its first and last, a change always kept', () => {
    const h = new HistoryKeeper();
    const other = backend('127.0.0.3', {
      usable: false,
      leftOut: 'protocol 2.0.0',
      rpc: {
        protocol: '2.0.0',
        usableBy: '',
        legacyHello: true,
        devices: [{ index: 0, freeBytes: GiB, totalBytes: GiB }],
      },
    });
    for (let i = 0; i < 5; i++) h.record([backend('127.0.0.1'), backend('127.0.0.2'), other], T0 + i * 100);
    const busy = backend('127.0.0.2', {
      rpc: { ...backend('x').rpc!, devices: [{ index: 0, freeBytes: 4 * GiB, totalBytes: 24 * GiB }] },
    });
    h.record([backend('127.0.0.1'), busy, other], T0 + 500);
    h.record([backend('127.0.0.1')], T0 + 600);
    expect(h.view([], T0 + 700).memory).toEqual([
      { at: '2026-01-01T00:00:00.000Z', freeBytes: 40 * GiB, totalBytes: 48 * GiB, servers: 2 },
      { at: '2026-01-01T00:00:00.400Z', freeBytes: 40 * GiB, totalBytes: 48 * GiB, servers: 2 },
      { at: '2026-01-01T00:00:00.500Z', freeBytes: 24 * GiB, totalBytes: 48 * GiB, servers: 2 },
      { at: '2026-01-01T00:00:00.600Z', freeBytes: 20 * GiB, totalBytes: 24 * GiB, servers: 1 },
    ]);
  });

  it('keeps at most 720 memory samples, and none older than the window', () => {
    const h = new HistoryKeeper();
    const at = (free: number) => [
      backend('127.0.0.1', {
        rpc: { ...backend('x').rpc!, devices: [{ index: 0, freeBytes: free, totalBytes: 24 * GiB }] },
      }),
    ];
    for (let i = 0; i < 2000; i++) h.record(at(i), T0 + i);
    const memory = h.view([], T0 + 2000).memory;
    expect(memory).toHaveLength(720);
    expect(memory.at(-1)?.freeBytes).toBe(1999);
    h.record(at(5), T0 + HISTORY_WINDOW_MS + 10_000);
    expect(h.view([], T0 + HISTORY_WINDOW_MS + 10_000).memory.map((m) => m.freeBytes)).toEqual([5]);
  });
});
