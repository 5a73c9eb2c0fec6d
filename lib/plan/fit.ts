// The fitter: which usable ggml-rpc servers a model fits on, and the --tensor-split that puts
// on each device what the plan expects. Pure arithmetic over a ModelMemory and the devices the
// probe reported; nothing here opens a socket or a file.
//
// llama.cpp (src/llama-model.cpp, load_tensors) numbers the devices in --rpc order, a server's
// devices in index order, and splits n_layer + 1 slots (the output layer is the last one) over
// them: slot il goes to the first device whose cumulative, normalized float32 split exceeds
// il / (n_layer + 1). Token embeddings stay on the host.
import { formatHostPort } from '../common/host-port.js';
import { normalizePlanOptions, type PlanOptions } from '../common/options.js';
import type { DeviceMemory } from '../probes/types.js';
import type { Backend } from '../resolver/types.js';
import type { LeftOut, ModelMemory, PlannedDevice, PlanResult } from './types.js';

/** llama.cpp's coordinator takes at most 16 RPC servers (GGML_RPC_MAX_SERVERS). */
export const MAX_PLAN_SERVERS = 16;
/** GGML_SCHED_MAX_BACKENDS is 16, and the host's CPU backend is one of them. */
export const MAX_PLAN_DEVICES = 15;
/** Subsets of one size tried at most: past it, only the servers with the most room are combined. */
const MAX_SUBSETS_PER_SIZE = 2000;
/** Bisection steps of the balanced fill: the share used is found to 2^-30. */
const BALANCE_STEPS = 30;

/** What llama.cpp does with `--tensor-split split -ngl 999`: the device of each of the n_layer + 1 slots. */
export function llamaCppAssignment(split: readonly number[], layers: number): number[] {
  let sum = 0;
  const cumulative = split.map((s) => (sum = Math.fround(sum + Math.fround(s))));
  const bounds = cumulative.map((c) => Math.fround(c / sum));
  const slots = layers + 1;
  return Array.from({ length: slots }, (_, il) => {
    const x = Math.fround(il / slots);
    const device = bounds.findIndex((b) => b > x); // std::upper_bound: the first bound above x
    return device === -1 ? bounds.length : device;
  });
}

export interface PlanInput extends PlanOptions {
  /** Servers resolve left out, with why (they are listed, never planned on). */
  leftOut?: readonly LeftOut[];
}

/** One device a plan may use, in llama.cpp's order within its server. */
interface Slot {
  server: Candidate;
  memory: DeviceMemory;
}

interface Candidate {
  name: string;
  rttMs: number;
  devices: DeviceMemory[];
  /** Free bytes of its devices after their reserves. */
  room: number;
}

interface Fill {
  slots: Slot[];
  /** Per device: [first layer, end), and whether it holds the output layer. */
  ranges: { first: number; end: number; output: boolean }[];
}

/** The model's bytes on the devices: each layer's weights and KV, and the output layer. */
function layerCosts(model: ModelMemory): number[] {
  return model.layerBytes.map((w, i) => w + (model.kvBytesPerLayer[i] ?? 0));
}

/**
 * Whole layers in order over the devices, each device filled up to `share` of its room; the
 * output layer on the device of the last slot. Null when something is left over.
 */
function fillUpTo(
  share: number,
  slots: readonly Slot[],
  costs: readonly number[],
  outputBytes: number,
  reserve: number,
) {
  const ranges: Fill['ranges'] = [];
  let layer = 0;
  let outputPlaced = false;
  for (const { memory } of slots) {
    const limit = share * (memory.freeBytes - reserve);
    const first = layer;
    let used = 0;
    while (layer < costs.length && used + (costs[layer] as number) <= limit) used += costs[layer++] as number;
    const output: boolean = !outputPlaced && layer === costs.length && used + outputBytes <= limit;
    outputPlaced ||= output;
    ranges.push({ first, end: layer, output });
  }
  return outputPlaced ? ranges : null;
}

/** The fill with the smallest share used on the fullest device: devices keep a comparable share free. */
function balancedFill(slots: Slot[], model: ModelMemory, reserve: number): Fill | null {
  const costs = layerCosts(model);
  if (!fillUpTo(1, slots, costs, model.outputBytes, reserve)) return null;
  let [low, high] = [0, 1];
  for (let step = 0; step < BALANCE_STEPS; step++) {
    const mid = (low + high) / 2;
    if (fillUpTo(mid, slots, costs, model.outputBytes, reserve)) high = mid;
    else low = mid;
  }
  return { slots, ranges: fillUpTo(high, slots, costs, model.outputBytes, reserve) as Fill['ranges'] };
}

/** The --tensor-split of a fill: the slots of each device (the output layer is one). */
function splitOf(fill: Fill): number[] {
  return fill.ranges.map((r) => r.end - r.first + (r.output ? 1 : 0));
}

/** A fill's devices with what each gets: layers, bytes, headroom. */
function plannedDevices(fill: Fill, model: ModelMemory, reserve: number): PlannedDevice[] {
  return fill.slots.map(({ server, memory }, i) => {
    const layers = fill.ranges[i] as Fill['ranges'][number];
    let weightBytes = layers.output ? model.outputBytes : 0;
    let kvBytes = 0;
    for (let l = layers.first; l < layers.end; l++) {
      weightBytes += model.layerBytes[l] as number;
      kvBytes += model.kvBytesPerLayer[l] ?? 0;
    }
    const used = layers.end > layers.first || layers.output;
    const reserveBytes = used ? reserve : 0;
    const expectedBytes = weightBytes + kvBytes + reserveBytes;
    return {
      server: server.name,
      device: memory.index,
      freeBytes: memory.freeBytes,
      totalBytes: memory.totalBytes,
      layers,
      weightBytes,
      kvBytes,
      reserveBytes,
      expectedBytes,
      headroomBytes: memory.freeBytes - expectedBytes,
    };
  });
}

/** The servers in --rpc order: the one with the most room last (it also holds the output layer). */
function inRpcOrder(servers: readonly Candidate[]): Candidate[] {
  return [...servers].sort((a, b) => a.room - b.room || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

interface Choice {
  servers: Candidate[];
  fill: Fill;
  devices: PlannedDevice[];
  /** RTT to the millisecond: below that, loopback and LAN figures are noise. */
  rttMs: number;
  headroom: number;
}

/** Fewer servers first (the caller tries sizes in order), then lower RTT, then more headroom. */
function better(a: Choice, b: Choice | undefined): boolean {
  if (!b) return true;
  if (a.rttMs !== b.rttMs) return a.rttMs < b.rttMs;
  return a.headroom > b.headroom;
}

/** Every k-subset of `pool`, in index order. */
function* combinations<T>(pool: readonly T[], k: number): Generator<T[]> {
  const index = Array.from({ length: k }, (_, i) => i);
  while (true) {
    yield index.map((i) => pool[i] as T);
    let i = k - 1;
    while (i >= 0 && index[i] === pool.length - k + i) i--;
    if (i < 0) return;
    index[i] = (index[i] as number) + 1;
    for (let j = i + 1; j < k; j++) index[j] = (index[j - 1] as number) + 1;
  }
}

function binomial(n: number, k: number): number {
  let c = 1;
  for (let i = 0; i < k; i++) c = (c * (n - i)) / (i + 1);
  return c;
}

/** The servers combined at size k: as many of the roomiest as keep the subsets within the bound. */
function poolFor(ranked: readonly Candidate[], k: number): readonly Candidate[] {
  let m = ranked.length;
  while (m > k && binomial(m, k) > MAX_SUBSETS_PER_SIZE) m--;
  return ranked.slice(0, m);
}

function choose(candidates: readonly Candidate[], model: ModelMemory, reserve: number): Choice | undefined {
  const modelBytes = layerCosts(model).reduce((a, b) => a + b, 0) + model.outputBytes;
  const ranked = [...candidates].sort((a, b) => b.room - a.room || a.rttMs - b.rttMs);
  for (let k = 1; k <= Math.min(ranked.length, MAX_PLAN_SERVERS); k++) {
    let best: Choice | undefined;
    for (const subset of combinations(poolFor(ranked, k), k)) {
      const room = subset.reduce((n, s) => n + s.room, 0);
      const deviceCount = subset.reduce((n, s) => n + s.devices.length, 0);
      if (room < modelBytes || deviceCount > MAX_PLAN_DEVICES) continue;
      const servers = inRpcOrder(subset);
      const slots = servers.flatMap((server) => server.devices.map((memory) => ({ server, memory })));
      const fill = balancedFill(slots, model, reserve);
      if (!fill) continue;
      const devices = plannedDevices(fill, model, reserve);
      const choice = {
        servers,
        fill,
        devices,
        rttMs: Math.round(servers.reduce((n, s) => n + s.rttMs, 0)),
        headroom: devices.reduce((n, d) => n + d.headroomBytes, 0),
      };
      if (better(choice, best)) best = choice;
    }
    if (best) return best;
  }
  return undefined;
}

/** A backend's devices, or why it cannot be planned on. */
function candidateOf(b: Backend, reserve: number): Candidate | LeftOut {
  const name = formatHostPort(b);
  if (b.rpc?.compatible === false) return { server: name, reason: `other protocol: ggml-rpc ${b.rpc.protocol}` };
  if (b.health === 'busy' || b.evidence === 'held' || b.evidence === 'coordinator') {
    return { server: name, reason: `busy: ${b.reason ?? 'another client holds it, so its memory is unknown'}` };
  }
  const devices = b.rpc?.devices ?? [];
  if (devices.length === 0) {
    return { server: name, reason: `memory unknown: ${b.reason ?? 'it reported no device'}` };
  }
  const room = devices.reduce((n, d) => n + Math.max(0, d.freeBytes - reserve), 0);
  return { name, rttMs: b.rttMs ?? Number.MAX_SAFE_INTEGER, devices: [...devices], room };
}

/** Bytes as a plan prints them: MiB to a tenth, GiB to a hundredth. */
export function formatBytes(n: number): string {
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : `${(n / 2 ** 20).toFixed(1)} MiB`;
}

/**
 * Where a model goes on these backends (resolve's usable set): the fewest servers it fits on
 * with a reserve per device, then the lowest RTT, then the most headroom; or, when it fits
 * nowhere, how much it needs and how much they have.
 */
export function planFor(
  model: ModelMemory & { path?: string },
  backends: readonly Backend[],
  input: PlanInput = {},
): PlanResult {
  const { ctx, cacheType, reserveBytes: reserve } = normalizePlanOptions(input);
  const leftOut: LeftOut[] = [...(input.leftOut ?? [])];
  const candidates: Candidate[] = [];
  for (const b of backends) {
    const c = candidateOf(b, reserve);
    if ('reason' in c) leftOut.push(c);
    else candidates.push(c);
  }
  const modelBytes = layerCosts(model).reduce((a, b) => a + b, 0) + model.outputBytes;
  const totalWeightBytes = model.layerBytes.reduce((a, b) => a + b, 0) + model.outputBytes + model.hostBytes;
  const available = candidates.reduce((n, c) => n + c.devices.reduce((m, d) => m + d.freeBytes, 0), 0);
  const { path = '', ...memory } = model;
  const base = { schema: 1 as const, model: { ...memory, path, totalWeightBytes }, availableBytes: available };
  const choice = choose(candidates, model, reserve);
  if (!choice) {
    const deviceCount = Math.min(
      MAX_PLAN_DEVICES,
      candidates.reduce((n, c) => n + c.devices.length, 0),
    );
    const needed = modelBytes + reserve * Math.max(1, deviceCount);
    return {
      ...base,
      fits: false,
      neededBytes: needed,
      rpc: [],
      tensorSplit: [],
      devices: [],
      leftOut,
      args: [],
      reason: notFitting(candidates, needed, available, modelBytes, reserve, model),
    };
  }
  const tensorSplit = splitOf(choice.fill);
  // Integer slots that sum to n_layer + 1 land exactly (il = a boundary maps to the bound
  // itself, never above it); checked all the same, since the plan is only as good as this.
  const expected = choice.fill.ranges.flatMap((r, device) => [
    ...Array.from({ length: r.end - r.first }, () => device),
  ]);
  expected.push(choice.fill.ranges.findIndex((r) => r.output));
  const actual = llamaCppAssignment(tensorSplit, model.layerBytes.length);
  if (actual.join() !== expected.join()) {
    throw new Error(`plan: llama.cpp would place the layers as ${actual.join()}, not ${expected.join()}`);
  }
  const chosen = new Set(choice.servers.map((s) => s.name));
  for (const c of candidates) {
    if (!chosen.has(c.name)) leftOut.push({ server: c.name, reason: 'not needed: the model fits without it' });
  }
  const rpc = choice.servers.map((s) => s.name);
  const args = ['--rpc', rpc.join(','), '--tensor-split', tensorSplit.join(','), '-ngl', '999'];
  if (ctx > 0) args.push('-c', String(ctx));
  if (cacheType !== 'f16') args.push('--cache-type-k', cacheType, '--cache-type-v', cacheType);
  return {
    ...base,
    fits: true,
    neededBytes: choice.devices.reduce((n, d) => n + d.expectedBytes, 0),
    rpc,
    tensorSplit,
    devices: choice.devices,
    leftOut,
    args,
  };
}

/** Why nothing fits, in a sentence: too little memory in all, or layers too big for each device. */
function notFitting(
  candidates: readonly Candidate[],
  needed: number,
  available: number,
  modelBytes: number,
  reserve: number,
  model: ModelMemory,
): string {
  if (candidates.length === 0) return 'no usable ggml-rpc server reported its memory';
  const what = `${formatBytes(modelBytes)} of weights and KV cache at ctx ${model.ctx} plus ${formatBytes(reserve)} reserve per device`;
  if (needed > available) {
    return `needs ${formatBytes(needed)} (${what}); the usable servers have ${formatBytes(available)} free`;
  }
  const largest = Math.max(0, ...layerCosts(model), model.outputBytes);
  return `needs ${formatBytes(needed)} (${what}) and the usable servers have ${formatBytes(available)} free, but not in pieces whole layers fit in (the largest is ${formatBytes(largest)}) within ${MAX_PLAN_SERVERS} servers and ${MAX_PLAN_DEVICES} devices`;
}
