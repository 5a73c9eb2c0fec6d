// A health round between resolves: witnesses first, a connection only when needed. A server
// a trusted coordinator holds is busy without a connection (its two-slot accept queue stays
// that client's); a busy server a witness vouches for is judged by its witness until its next
// allowed connect (one per resolve interval); the rest share one scan with the ggml-rpc
// probe, and each answer is judged as resolve judges it.
import type { Verdict, WatchVerifier } from '../resolver/for-watcher.js';
import type { Followed, FollowedSet } from './followed.js';

/**
 * One round over every followed backend; `started` is its performance.now(). `end` runs
 * whatever happens (told whether the round connected to any), in the turn of the round's
 * last check: a consumer woken by that check's event already sees what `end` did.
 */
export async function healthRound(
  followedSet: FollowedSet,
  verifier: WatchVerifier,
  { started, intervalMs, alsoHeld }: { started: number; intervalMs: number; alsoHeld?: ReadonlyMap<string, string> },
  end: (connected: boolean) => void,
): Promise<void> {
  let connected = false;
  try {
    if (followedSet.size === 0) return;
    const held = await verifier.heldAmong([...followedSet.values()].map((f) => f.heldKey));
    // The supervised child's servers, whatever its command line (run's hand-over).
    for (const [key, why] of alsoHeld ?? []) held.set(key, why);
    const toProbe: Followed[] = [];
    for (const followed of followedSet.values()) {
      const holder = held.get(followed.heldKey);
      if (holder !== undefined) {
        followedSet.busyByWitness(followed, `busy: ${holder}; not connected to`, 'held');
        continue;
      }
      const vouched = followed.view.evidence === 'coordinator' || followed.view.evidence === 'registry';
      if (vouched && started - followed.lastConnect < intervalMs) {
        const why = await verifier.vouch(followed.heldKey);
        if (why !== undefined) {
          followedSet.busyByWitness(followed, `busy: ${why}`);
          continue;
        }
      }
      toProbe.push(followed);
    }
    if (toProbe.length === 0) return;
    const checked = await verifier.recheck(toProbe);
    toProbe.forEach((followed, i) => {
      followed.lastConnect = performance.now();
      const check = checked[i];
      if (check) take(followedSet, followed, check.verdict, check.rttMs);
    });
    connected = true;
  } finally {
    end(connected);
  }
}

/** One connecting check's verdict, as an observation. */
function take(followedSet: FollowedSet, followed: Followed, verdict: Verdict, rttMs: number | undefined): void {
  if ('reason' in verdict) {
    followedSet.apply(followed, { check: 'health', saw: verdict.reason }, rttMs);
    return;
  }
  const { host, port } = followed.view;
  const alive = { ...verdict.backend, host, port };
  followedSet.apply(followed, { check: 'health', saw: verdict.backend.reason ?? 'answered HELLO', alive }, rttMs);
}
