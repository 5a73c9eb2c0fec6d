// The native engine: hands the packed targets to the C++ core and unpacks its batches of results.
import { constants } from 'node:os';

import type { Poller } from '../../common/options.js';
import type { NativeBinding } from '../addon/load.js';
import { NativeScanError } from '../../common/errors.js';
import { RESULT_RECORD_SIZE, TIMED_OUT } from '../addon/layout.js';
import type { EngineOptions, EngineRun, EngineTiming, RawOutcome, Scanner } from './index.js';

const errnoNames = new Map<number, string>(
  Object.entries(constants.errno).map(([name, value]) => [value, name] as [number, string]),
);

function outcomeName(error: number): string {
  if (error === 0) return 'connected';
  if (error === TIMED_OUT) return 'timeout';
  return errnoNames.get(error) ?? `ERRNO_${error}`;
}

export function createNativeScanner(binding: NativeBinding, poller: Poller): Scanner {
  return {
    name: 'native',
    start(targets, options: EngineOptions, onResults): EngineRun {
      let resolveFinished!: () => void;
      const finished = new Promise<void>((resolve) => (resolveFinished = resolve));
      let stopped = false;
      let timing: EngineTiming | undefined;
      let handle;
      try {
        handle = new binding.Scan(
          targets.bytes,
          { ...options, poller },
          (records, done, _aborted, reports, endTiming) => {
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
                if (probed) outcome.steps = probed;
                batch.push(outcome);
              }
              onResults(batch);
            }
            if (done) {
              timing = endTiming;
              resolveFinished();
            }
          },
        );
      } catch (error) {
        const code = (error as { code?: string }).code ?? 'SB_NATIVE_ERROR';
        throw new NativeScanError(`native scan did not start: ${(error as Error).message}`, code, { cause: error });
      }
      return {
        timing: () => timing,
        abort() {
          stopped = true;
          handle.abort();
        },
        finished,
      };
    },
  };
}
