// planModel(): a GGUF file's memory, planned over the usable backends of a resolution. The
// plan room reads files and shapes, never the network: the caller resolves (resolveBackends,
// or `plan --from` a serve instance) and hands the resolution over.
import { formatHostPort } from '../common/host-port.js';
import { normalizePlanOptions, type PlanOptions } from '../common/options.js';
import type { Resolution } from '../resolver/types.js';
import { planFor } from './fit.js';
import { readModelMemory } from './model-memory.js';
import type { LeftOut, PlanResult } from './types.js';

/** A resolver's reason for dropping a server, led by the kind a person scans for. */
function kindOf(reason: string): string {
  if (/^busy\b/.test(reason)) return reason;
  if (/does not match client|no single client can use it/.test(reason)) return `other protocol: ${reason}`;
  if (/^(closed|no answer|filtered|unreachable|timeout)\b/.test(reason)) return `down: ${reason}`;
  // A ggml-rpc server serves one client at a time: a silent port is most often a busy one.
  if (/^accepted the connection and answered neither/.test(reason)) return `silent (busy?): ${reason}`;
  return reason;
}

/** The servers resolve dropped (down, other protocol, refused), each once, unless another source kept it. */
export function leftOutOf(resolution: Resolution): LeftOut[] {
  const kept = new Set(resolution.backends.map(formatHostPort));
  const reasons = new Map<string, string>();
  for (const source of resolution.sources) {
    for (const dropped of source.dropped) {
      const server = formatHostPort(dropped);
      if (!kept.has(server) && !reasons.has(server)) reasons.set(server, kindOf(dropped.reason));
    }
  }
  return [...reasons].map(([server, reason]) => ({ server, reason }));
}

/**
 * Reads the model at `path` and plans it over a resolution's backends (see planFor). Given a
 * function, it is called once the file has been read: a bad file costs no network round.
 */
export async function planModel(
  path: string,
  resolution: Resolution | (() => Promise<Resolution>),
  options: PlanOptions = {},
): Promise<PlanResult> {
  const settings = normalizePlanOptions(options);
  const model = await readModelMemory(path, { ctx: settings.ctx, cacheType: settings.cacheType });
  const resolved = typeof resolution === 'function' ? await resolution() : resolution;
  return planFor({ ...model, path }, resolved.backends, { ...settings, leftOut: leftOutOf(resolved) });
}

export { planFor, llamaCppAssignment, MAX_PLAN_DEVICES, MAX_PLAN_SERVERS, type PlanInput } from './fit.js';
export { readModelMemory, type ModelMemoryOptions } from './model-memory.js';
export type { CacheType, LeftOut, ModelMemory, PlannedDevice, PlanResult } from './types.js';
