// The fitter over hand-built model memories and backends: which servers, in which order, the
// --tensor-split llama.cpp reads back as the planned layers, and why a model does not fit.
import { describe, expect, it } from 'vitest';

import { InvalidOptionError } from '../../lib/common/errors.js';
import { normalizePlanOptions, parseSize } from '../../lib/common/options.js';
import { llamaCppAssignment, MAX_PLAN_DEVICES, planFor } from '../../lib/plan/fit.js';
import type { ModelMemory } from '../../lib/plan/types.js';
import type { Backend } from '../../lib/resolver/types.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

/** A model of `layers` layers of `layerMiB` weights and `kvMiB` KV each, and its output layer. */
function model(layers: number, layerMiB: number, kvMiB = 0, outputMiB = layerMiB): ModelMemory {
  return {
    architecture: 'llama',
    layerBytes: Array.from({ length: layers }, () => layerMiB * MiB),
    kvBytesPerLayer: Array.from({ length: layers }, () => kvMiB * MiB),
    outputBytes: outputMiB * MiB,
    hostBytes: 100 * MiB,
    ctx: 4096,
    cacheType: 'f16',
    assumptions: [],
  };
}

/** A verified ggml-rpc server on 127.0.0.`n` with devices of these free MiB (total twice that). */
function server(n: number, freeMiB: number[], rttMs = 0.2, protocol = '3.0.0'): Backend {
  return {
    host: `127.0.0.${n}`,
    port: 50052,
    sources: ['config'],
    verified: true,
    evidence: 'hello',
    rttMs,
    health: 'serving',
    rpc: {
      protocol,
      usableBy: '>=3.0.0 <4.0.0',
      legacyHello: false,
      devices: freeMiB.map((free, index) => ({ index, freeBytes: free * MiB, totalBytes: 2 * free * MiB })),
    },
  };
}

const reserve = { reserveBytes: 512 * MiB };

describe('llama.cpp layer rule (float32 upper_bound over n_layer + 1 slots)', () => {
  const devicesOf = (split: number[], layers: number) => llamaCppAssignment(split, layers);
  it('-ts 1,1 on 8 layers: 0-4 on RPC0, 5-7 and the output on RPC1', () => {
    expect(devicesOf([1, 1], 8)).toEqual([0, 0, 0, 0, 0, 1, 1, 1, 1]);
  });
  it('-ts 1,1 on 12 layers: 0-6 / 7-11 and the output', () => {
    expect(devicesOf([1, 1], 12)).toEqual([...Array(7).fill(0), ...Array(6).fill(1)]);
  });
  it('-ts 1,1 on 6 layers: 0-3 / 4-5 and the output', () => {
    expect(devicesOf([1, 1], 6)).toEqual([0, 0, 0, 0, 1, 1, 1]);
  });
  it('-ts 3,5 on 8 layers: 3/8 of 9 slots puts layers 0-3 on RPC0, so 3,6 is what gives it 3', () => {
    expect(devicesOf([3, 5], 8)).toEqual([0, 0, 0, 0, 1, 1, 1, 1, 1]);
    expect(devicesOf([3, 6], 8)).toEqual([0, 0, 0, 1, 1, 1, 1, 1, 1]);
  });
  it('skips a device of split 0', () => {
    expect(devicesOf([2, 0, 3], 4)).toEqual([0, 0, 2, 2, 2]);
  });
});

describe('planFor', () => {
  it('fits on one server, with the arguments for llama-server', () => {
    const plan = planFor(model(8, 100, 10), [server(45, [4096])], reserve);
    expect(plan.fits).toBe(true);
    expect(plan.rpc).toEqual(['127.0.0.45:50052']);
    expect(plan.tensorSplit).toEqual([9]);
    expect(plan.args).toEqual(['--rpc', '127.0.0.45:50052', '--tensor-split', '9', '-ngl', '999']);
    const [device] = plan.devices;
    expect(device).toMatchObject({ layers: { first: 0, end: 8, output: true }, weightBytes: 900 * MiB });
    expect(device?.kvBytes).toBe(80 * MiB);
    expect(device?.expectedBytes).toBe((900 + 80 + 512) * MiB);
    expect(device?.headroomBytes).toBe((4096 - 1492) * MiB);
    expect(plan.neededBytes).toBe(1492 * MiB);
    expect(plan.model.totalWeightBytes).toBe(1000 * MiB);
  });

  it('needs two servers when neither holds it alone, the roomier last with the output layer', () => {
    const plan = planFor(model(8, 100), [server(45, [1200]), server(48, [1000])], reserve);
    expect(plan.fits).toBe(true);
    expect(plan.rpc).toEqual(['127.0.0.48:50052', '127.0.0.45:50052']);
    expect(plan.tensorSplit).toEqual([4, 5]);
    expect(plan.devices.map((d) => d.headroomBytes).every((h) => h >= 0)).toBe(true);
    expect(plan.devices.at(-1)?.layers.output).toBe(true);
    // What llama.cpp reads from the split is the plan, layer by layer.
    const planned = plan.devices.flatMap((d, i) => Array(d.layers.end - d.layers.first).fill(i));
    expect(llamaCppAssignment(plan.tensorSplit, 8)).toEqual([...planned, 1]);
  });

  it('prefers fewer servers over lower RTT', () => {
    const plan = planFor(
      model(8, 100),
      [server(45, [600], 0.1), server(46, [600], 0.1), server(47, [2000], 9)],
      reserve,
    );
    expect(plan.rpc).toEqual(['127.0.0.47:50052']);
    expect(plan.leftOut).toEqual([
      { server: '127.0.0.45:50052', reason: 'not needed: the model fits without it' },
      { server: '127.0.0.46:50052', reason: 'not needed: the model fits without it' },
    ]);
  });

  it('takes the lower RTT among servers that fit alone, then the more headroom', () => {
    const byRtt = planFor(model(8, 100), [server(45, [4000], 5), server(46, [2000], 1)], reserve);
    expect(byRtt.rpc).toEqual(['127.0.0.46:50052']);
    // Within a millisecond RTT is noise: the headroom decides.
    const byHeadroom = planFor(model(8, 100), [server(45, [2000], 0.1), server(46, [3000], 0.4)], reserve);
    expect(byHeadroom.rpc).toEqual(['127.0.0.46:50052']);
  });

  it('spreads layers so the devices keep a comparable share free', () => {
    const even = planFor(model(17, 100), [server(45, [1500]), server(46, [1500])], reserve);
    expect(even.tensorSplit).toEqual([9, 9]);
    // 1000 and 2000 MiB: 7 and 14 slots use 70 % of each, where a greedy fill would leave
    // the first device full.
    const uneven = planFor(model(20, 100), [server(45, [2000]), server(46, [1000])], { reserveBytes: 0 });
    expect(uneven.rpc).toEqual(['127.0.0.46:50052', '127.0.0.45:50052']);
    expect(uneven.tensorSplit).toEqual([7, 14]);
    expect(uneven.devices.map((d) => d.headroomBytes / d.freeBytes)).toEqual([0.3, 0.3]);
  });

  it('counts each device of a server with several, in index order', () => {
    const plan = planFor(model(10, 100), [server(45, [1200, 1200])], reserve);
    expect(plan.fits).toBe(true);
    expect(plan.rpc).toEqual(['127.0.0.45:50052']);
    expect(plan.devices.map((d) => [d.server, d.device])).toEqual([
      ['127.0.0.45:50052', 0],
      ['127.0.0.45:50052', 1],
    ]);
    expect(plan.tensorSplit).toEqual([6, 5]);
    for (const d of plan.devices) expect(d.expectedBytes).toBeLessThanOrEqual(d.freeBytes);
  });

  it('does not fit: says how much it needs and how much the usable servers have, and exits no plan', () => {
    const plan = planFor(model(8, 1000), [server(45, [2000]), server(46, [2000])], reserve);
    expect(plan.fits).toBe(false);
    expect(plan.args).toEqual([]);
    expect(plan.neededBytes).toBe((9000 + 2 * 512) * MiB);
    expect(plan.availableBytes).toBe(4000 * MiB);
    expect(plan.reason).toMatch(/^needs 9\.79 GiB .*; the usable servers have 3\.91 GiB free$/);
  });

  it('does not fit when whole layers do not fit in the pieces, though the sum would', () => {
    const plan = planFor(model(2, 1000, 0, 10), [server(45, [1300]), server(46, [1300]), server(47, [1300])], {
      reserveBytes: 0,
    });
    expect(plan.fits).toBe(true);
    const tight = planFor(model(2, 1000, 0, 10), [server(45, [1500]), server(46, [900])], { reserveBytes: 0 });
    expect(tight.fits).toBe(false);
    expect(tight.reason).toContain('not in pieces whole layers fit in');
  });

  it('lists what was left out and why: busy, other protocol, and what resolve dropped', () => {
    const busy: Backend = { host: '127.0.0.50', port: 50052, sources: ['process'], verified: true, evidence: 'held' };
    const other = server(51, [9000], 0.1, '2.0.0');
    (other.rpc as NonNullable<Backend['rpc']>).compatible = false;
    const plan = planFor(model(4, 100), [busy, other, server(45, [2000])], {
      ...reserve,
      leftOut: [{ server: '127.0.0.52:50052', reason: 'down: connection refused' }],
    });
    expect(plan.fits).toBe(true);
    expect(plan.leftOut.map((l) => [l.server, l.reason.split(':')[0]])).toEqual([
      ['127.0.0.52:50052', 'down'],
      ['127.0.0.50:50052', 'busy'],
      ['127.0.0.51:50052', 'other protocol'],
    ]);
  });

  it('adds -c only for an explicit context, and both cache types when not f16', () => {
    const plan = planFor(model(4, 100), [server(45, [2000])], { ...reserve, ctx: 8192, cacheType: 'q8_0' });
    expect(plan.args.slice(6)).toEqual(['-c', '8192', '--cache-type-k', 'q8_0', '--cache-type-v', 'q8_0']);
  });

  it('never plans more devices than llama.cpp takes', () => {
    const many = Array.from({ length: 20 }, (_, i) => server(60 + i, [300]));
    const plan = planFor(model(50, 100), many, { reserveBytes: 0 });
    expect(plan.fits).toBe(false);
    const fewer = planFor(model(20, 100), many, { reserveBytes: 0 });
    expect(fewer.fits).toBe(true);
    expect(fewer.devices).toHaveLength(7);
    expect(fewer.devices.length).toBeLessThanOrEqual(MAX_PLAN_DEVICES);
    expect(llamaCppAssignment(fewer.tensorSplit, 20)).toHaveLength(21);
  });

  it('checks its options: a reserve is a size, a cache type one it knows', () => {
    expect(parseSize('--reserve', '256MiB')).toBe(256 * MiB);
    expect(parseSize('--reserve', '1GiB')).toBe(GiB);
    expect(parseSize('--reserve', '0')).toBe(0);
    expect(parseSize('--reserve', '2GB')).toBe(2e9);
    expect(() => parseSize('--reserve', '12 parsecs')).toThrow(InvalidOptionError);
    expect(() => normalizePlanOptions({ cacheType: 'q5_1' as 'f16' })).toThrow('cacheType: must be f16, q8_0 or q4_0');
    expect(() => normalizePlanOptions({ ctx: -1 })).toThrow(InvalidOptionError);
    expect(normalizePlanOptions()).toEqual({ ctx: 0, cacheType: 'f16', reserveBytes: 512 * MiB });
  });
});
