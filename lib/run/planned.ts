// What `run` plugs into the supervisor: the planner as its chooser (the servers a model fits
// on, and the --tensor-split that puts on each what the plan expects), and the shared Redis's
// claims as its registry of who holds which server.
import { CACHE_TYPES } from '../common/options.js';
import { planFor } from '../plan/fit.js';
import type { CacheType, ModelMemory } from '../plan/types.js';
import type { CoordinatorClaims, ClaimsLost } from '../redis/claims.js';
import type { Watcher } from '../watch/watcher.js';
import type { Chooser, Claims } from './supervisor.js';

/** The value of a command's own option (`-c 4096`, `--ctx-size=4096`), the last one given. */
export function commandOption(command: readonly string[], names: readonly string[]): string | undefined {
  let value: string | undefined;
  command.forEach((arg, i) => {
    if (names.includes(arg) && i + 1 < command.length) value = command[i + 1];
    for (const name of names)
      if (name.startsWith('--') && arg.startsWith(`${name}=`)) value = arg.slice(name.length + 1);
  });
  return value;
}

/** The context and KV cache type llama-server will use, read from its own arguments. */
export function commandPlanOptions(command: readonly string[]): { ctx: number; cacheType: CacheType } {
  const ctx = Number(commandOption(command, ['-c', '--ctx-size']) ?? 0);
  const cache = commandOption(command, ['-ctk', '--cache-type-k']);
  return {
    ctx: Number.isSafeInteger(ctx) && ctx > 0 ? ctx : 0,
    cacheType: (CACHE_TYPES as readonly string[]).includes(cache ?? '') ? (cache as CacheType) : 'f16',
  };
}

/**
 * Chooses as `plan` does: the usable servers the model fits on, or why it waits. Our own
 * coordinator's servers read as held until the next health round; the usable set already
 * judged them, so the plan takes them as free.
 */
export function plannedChoice(
  model: ModelMemory & { path: string },
  command: readonly string[],
  reserveBytes?: number,
): Chooser {
  const hasLayers = commandOption(command, ['-ngl', '--n-gpu-layers', '--gpu-layers']) !== undefined;
  return (usable) => {
    if (usable.length === 0) return { wait: 'no usable server yet' };
    const backends = usable.map(({ health: _health, evidence: _evidence, ...b }) => b);
    const plan = planFor(model, backends, {
      ...commandPlanOptions(command),
      ...(reserveBytes === undefined ? {} : { reserveBytes }),
    });
    if (!plan.fits) return { wait: plan.reason ?? 'the model fits on no usable set' };
    const extraArgs = ['--tensor-split', plan.tensorSplit.join(',')];
    if (!hasLayers) extraArgs.push('-ngl', '999');
    return { rpc: plan.rpc, extraArgs };
  };
}

/** The watcher's shared-Redis claims as the supervisor's Claims, opened at the first claim. */
export function fleetClaims(watcher: Watcher): Claims {
  let opened: Promise<CoordinatorClaims> | undefined;
  const lost: ClaimsLost[] = [];
  const open = () =>
    (opened ??= watcher.coordinatorClaims().then((claims) => {
      claims.onLost((why, servers) => lost.forEach((cb) => cb(why, servers)));
      return claims;
    }));
  return {
    claim: async (servers) => (await open()).claimAll(servers),
    release: async () => {
      if (opened) await (await opened).release();
    },
    onLost: (cb) => lost.push(cb),
  };
}
