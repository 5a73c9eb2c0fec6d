// The pure-JS engine as the scan sees it. Its implementation (js-engine.ts, with
// p-limit and node:net) loads when the first JS scan starts: a native scan, the common case,
// never pays for it at start-up.
import type { EngineRun, Scanner } from './index.js';

export function createJsScanner(): Scanner {
  return {
    name: 'js',
    start(targets, options, onResults): EngineRun {
      let run: EngineRun | undefined;
      let aborted = false;
      const finished = import('./js-engine.js').then(({ startJsScan }) => {
        if (aborted) return undefined;
        run = startJsScan(targets, options, onResults);
        return run.finished;
      });
      return {
        timing: () => run?.timing(),
        abort() {
          aborted = true;
          run?.abort();
        },
        finished,
      };
    },
  };
}
