// Running probe chains: the JS engine's own probes (the twin of the native probe phase), and
// the part of a chain that runs after the engine's pass (HTTP, and what follows it) for both.
import type { Socket } from 'node:net';

import type { EngineOptions, RawOutcome, Scanner } from '../scanner/index.js';
import { TargetTable } from '../target-table.js';
import type { Endpoint } from '../targets.js';
import { planKinds, restSteps } from './chain.js';
import { GgmlRpcSession } from './ggml-rpc.js';
import { grpcHealthStep } from './grpc-health.js';
import { httpStep } from './http.js';
import { driveSession, type Target } from './session.js';
import type { ProbeName, ProbeStep } from './types.js';

type StepOptions = Pick<EngineOptions, 'probeTimeoutMs' | 'grpcService'>;

/**
 * The JS engine's probes for one plan: the first on the connection the scan made, each next
 * one (after a "not recognized") on a fresh connection.
 */
export async function runJsPlan(
  kinds: readonly ProbeName[],
  target: Target,
  options: StepOptions,
  socket: Socket | undefined,
  signal: AbortSignal,
): Promise<ProbeStep[]> {
  const steps: ProbeStep[] = [];
  let connection = socket;
  for (const kind of kinds) {
    const step =
      kind === 'ggml-rpc'
        ? await driveSession(new GgmlRpcSession(), target, options.probeTimeoutMs, connection, signal)
        : await grpcHealthStep(target, options.grpcService, options.probeTimeoutMs, connection, signal);
    connection = undefined;
    steps.push(step);
    if (step.outcome !== 'not-recognized') break;
  }
  connection?.resetAndDestroy();
  return steps;
}

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
