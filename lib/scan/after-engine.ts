// The part of a probe chain that runs after the engine's pass, for both engines: HTTP here in
// TypeScript, and engine probes that follow it through the engine again. Loaded with the
// first chain that needs it (it brings node:http and node:http2).
import { planKinds, restSteps } from '../probes/plan.js';
import { httpStep } from '../probes/http.js';
import type { ProbeName, ProbeStep } from '../probes/types.js';
import type { EngineOptions, RawOutcome, Scanner } from './engines/index.js';
import { TargetTable, type Endpoint } from './targets/table.js';

/** Runs one endpoint through `scanner` with a plan and returns the steps (or why none ran). */
function engineSteps(
  scanner: Scanner,
  endpoint: Endpoint,
  plan: number,
  options: EngineOptions,
  signal: AbortSignal,
): Promise<ProbeStep[]> {
  return new Promise((resolve) => {
    let outcome: RawOutcome | undefined;
    const target = TargetTable.fromEndpoints([endpoint]);
    target.setPlan(0, plan);
    const run = scanner.start(target, options, (batch) => (outcome ??= batch[0]));
    const onAbort = () => run.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    void run.finished.then(() => {
      signal.removeEventListener('abort', onAbort);
      if (outcome?.steps) return resolve(outcome.steps);
      const why = outcome ? `${outcome.outcome} on reconnecting` : 'aborted';
      resolve([
        {
          kind: planKinds(plan)[0] ?? 'grpc',
          outcome: 'connect-failed',
          detail: `a new connection for the probe failed: ${why}`,
          elapsedMs: outcome?.rttMs ?? 0,
        },
      ]);
    });
  });
}

/**
 * Continues a chain after the engine's pass: HTTP here in TypeScript, engine probes through the
 * engine again, each only while the steps so far say "not recognized".
 */
export async function continueChain(
  scanner: Scanner,
  endpoint: Endpoint,
  rest: readonly ProbeName[],
  onlyOllama: boolean,
  options: EngineOptions,
  steps: ProbeStep[],
  signal: AbortSignal,
): Promise<ProbeStep[]> {
  for (const step of restSteps(rest)) {
    const last = steps.at(-1);
    if ((last && last.outcome !== 'not-recognized') || signal.aborted) break;
    if (step === 'http') steps.push(await httpStep(endpoint, options.probeTimeoutMs, onlyOllama, signal));
    else steps.push(...(await engineSteps(scanner, endpoint, step, options, signal)));
  }
  return steps;
}
