// The native engine: hands the packed targets to the C++ core and unpacks its batches of results.
import { constants } from 'node:os';

import type { NativeBinding, NativeProbeStep } from '../addon/load.js';
import type { ProbeStep } from '../../probes/types.js';
import { NativeScanError } from '../../common/errors.js';
import { RESULT_RECORD_SIZE, TIMED_OUT } from '../addon/layout.js';
import type { EngineOptions, EngineRun, RawOutcome, Scanner } from './index.js';

const errnoNames = new Map<number, string>(
  Object.entries(constants.errno).map(([name, value]) => [value, name] as [number, string]),
);

/** Native steps carry -1 for "absent"; drop those so both engines' steps look alike. */
function fromNativeStep(step: NativeProbeStep): ProbeStep {
  const out: ProbeStep = {
    kind: step.kind,
    outcome: step.outcome,
    detail: step.detail,
    elapsedMs: step.elapsedMs,
    received: step.received,
  };
  if (step.version) {
    out.version = step.version;
    out.legacyHello = step.legacyHello ?? false;
  }
  if (step.devices) out.devices = step.devices;
  if (step.httpStatus !== undefined && step.httpStatus >= 0) out.httpStatus = step.httpStatus;
  if (step.grpcStatus !== undefined && step.grpcStatus >= 0) out.grpcStatus = step.grpcStatus;
  if (step.servingStatus !== undefined && step.servingStatus >= 0) out.servingStatus = step.servingStatus;
  if (step.grpcMessage) out.grpcMessage = step.grpcMessage;
  return out;
}

function outcomeName(error: number): string {
  if (error === 0) return 'connected';
  if (error === TIMED_OUT) return 'timeout';
  return errnoNames.get(error) ?? `ERRNO_${error}`;
}

export function createNativeScanner(binding: NativeBinding, backend: string): Scanner {
  return {
    name: 'native',
    start(targets, options: EngineOptions, onResults): EngineRun {
      let resolveFinished!: () => void;
      const finished = new Promise<void>((resolve) => (resolveFinished = resolve));
      let stopped = false;
      let handle;
      try {
        handle = new binding.Scan(targets.bytes, { ...options, backend }, (records, done, _aborted, reports) => {
          if (records && !stopped) {
            // Each record: u32 index, i32 error, f64 rtt.
            const words = new Int32Array(records);
            const rtts = new Float64Array(records);
            const count = records.byteLength / RESULT_RECORD_SIZE;
            const steps = new Map(reports?.map((r) => [r.index, r.steps]));
            const batch: RawOutcome[] = [];
            for (let r = 0; r < count; r++) {
              const index = words[r * 4] as number;
              const outcome: RawOutcome = {
                index,
                outcome: outcomeName(words[r * 4 + 1] as number),
                rttMs: rtts[r * 2 + 1] as number,
              };
              const probed = steps.get(index);
              if (probed) outcome.steps = probed.map(fromNativeStep);
              batch.push(outcome);
            }
            onResults(batch);
          }
          if (done) resolveFinished();
        });
      } catch (error) {
        const code = (error as { code?: string }).code ?? 'SB_NATIVE_ERROR';
        throw new NativeScanError(`native scan did not start: ${(error as Error).message}`, code, { cause: error });
      }
      return {
        abort() {
          stopped = true;
          handle.abort();
        },
        finished,
      };
    },
  };
}
