// The pure-JS engine: net.Socket under a p-limit window. The fallback when the addon is
// missing and the reference the native engine is checked against, so its verdicts must hold
// at scale: the window never exceeds what the fd limit allows, EMFILE narrows it, and a
// deadline is only judged after pending I/O has been read.
import { setMaxListeners } from 'node:events';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

import pLimit from 'p-limit';

import { planKinds } from '../../probes/plan.js';
import { connectTcp, type ConnectDeadline } from '../../probes/connect.js';
import type { TargetTable } from '../targets/table.js';
import type { EngineOptions, EngineRun, RawOutcome } from './index.js';
import { ConnectTimers, RttEstimator } from './rtt.js';

/** How long an attempt that could get no descriptor at all waits before trying again. */
const FD_BACKOFF_MS = 5;

/** Spaces connects `1/rate` seconds apart; `rate` 0 lets everything through. */
function createPacer(rate: number): () => Promise<void> {
  if (rate <= 0) return () => Promise.resolve();
  const intervalMs = 1000 / rate;
  let nextAt = 0;
  return async () => {
    const now = performance.now();
    const at = Math.max(now, nextAt);
    nextAt = at + intervalMs;
    if (at > now + 1) await sleep(at - now);
  };
}

/** Starts a JS-engine scan of `targets`; loaded by js.ts when the first scan starts. */
export function startJsScan(
  targets: TargetTable,
  options: EngineOptions,
  onResults: (batch: RawOutcome[]) => void,
): EngineRun {
  const limit = pLimit({ concurrency: options.concurrency, rejectOnClear: true });
  const pace = createPacer(options.rate);
  const inFlight = new Set<(outcome: string) => void>();
  const probes = new AbortController();
  // Every probe in flight listens on this one signal: thousands of listeners is by design.
  setMaxListeners(0, probes.signal);
  let stopped = false;
  const adaptive = options.timing === 'adaptive';
  // Fixed timing is a floor equal to the ceiling: every attempt waits exactly the timeout.
  const rtt = new RttEstimator(adaptive ? options.minRttTimeoutMs : options.timeoutMs, options.timeoutMs);
  const timers = new ConnectTimers(rtt, options.retries);
  let retried = 0;

  // node:net loads only when this engine runs: a native scan never needs it.
  const net = import('node:net');
  const probeTarget = async (index: number): Promise<void> => {
    const target = { host: targets.host(index), port: targets.port(index), family: targets.family(index) };
    const plan = planKinds(targets.plan(index));
    const netModule = await net;
    let attempts = 0;
    let starvedSince = 0;
    const deadline: ConnectDeadline = (started, expire) => timers.push(attempts, started, expire);
    for (;;) {
      if (stopped) return;
      await pace();
      if (stopped) return;
      const result = await connectTcp(
        netModule,
        target,
        adaptive ? deadline : options.timeoutMs,
        plan.length > 0,
        inFlight,
      );
      if (stopped || result.outcome === 'aborted') {
        result.socket?.resetAndDestroy();
        return;
      }
      if (result.outcome === 'EMFILE' || result.outcome === 'ENFILE') {
        // EMFILE never fails a scan: narrow the window to what could be opened, and with
        // nothing else in flight wait for descriptors, up to one timeout.
        if (limit.activeCount > 1) {
          limit.concurrency = Math.max(1, limit.activeCount - 1);
          starvedSince = 0;
        } else {
          starvedSince ||= performance.now();
          if (performance.now() - starvedSince >= options.timeoutMs) {
            onResults([{ index, outcome: result.outcome, rttMs: performance.now() - starvedSince }]);
            return;
          }
        }
        await sleep(FD_BACKOFF_MS);
        continue;
      }
      if (result.outcome === 'connected' || result.outcome === 'ECONNREFUSED') {
        rtt.sample(result.rttMs);
        timers.reschedule();
      }
      // Adaptive timing retries only a connect given up before the ceiling: an all-silent range
      // costs one ceiling, and each retry elsewhere at most twice the timeout it followed.
      const early = !adaptive || rtt.attemptTimeoutMs(attempts) < rtt.ceilingMs;
      if (result.outcome === 'timeout' && attempts < options.retries && early) {
        attempts++;
        retried++;
        continue;
      }
      const outcome: RawOutcome = { index, outcome: result.outcome, rttMs: result.rttMs };
      if (result.socket) {
        // Probe code (node:http2 and the rest) loads only when a scan probes.
        const { runJsPlan } = await import('./js-probes.js');
        outcome.steps = await runJsPlan(plan, target, options, result.socket, probes.signal);
        if (stopped) return;
      }
      onResults([outcome]);
      return;
    }
  };

  const tasks = Array.from({ length: targets.length }, (_, index) => limit(probeTarget, index));
  const finished = Promise.allSettled(tasks).then(() => timers.close());
  return {
    timing: () => rtt.snapshot(retried),
    abort() {
      if (stopped) return;
      stopped = true;
      timers.close();
      limit.clearQueue();
      for (const settle of [...inFlight]) settle('aborted');
      probes.abort();
    },
    finished,
  };
}
