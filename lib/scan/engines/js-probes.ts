// The JS engine's probe phase, the twin of the native scan worker's: the probes of an
// endpoint's plan, the first on the connection the scan made, each next one (after a "not
// recognized") on a fresh connection.
import type { Socket } from 'node:net';

import { GgmlRpcSession } from '../../probes/ggml-rpc.js';
import { grpcHealthStep } from '../../probes/grpc-health.js';
import { driveSession, type Target } from '../../probes/session.js';
import type { ProbeName, ProbeStep } from '../../probes/types.js';
import type { EngineOptions } from './index.js';

type StepOptions = Pick<EngineOptions, 'probeTimeoutMs' | 'grpcService'>;

/** Runs the probes of one plan on `target`, stopping at the first that is not "not recognized". */
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
