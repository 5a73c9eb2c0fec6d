// One backend's hysteresis: observations in, at most one transition out. A backend goes down
// after `failAfter` failed checks in a row and comes back up after `recoverAfter` good ones,
// so one dropped check never produces an event. A busy answer is alive, not a failure.
import type { Backend } from '../resolver/types.js';
import type { CheckKind, FieldChange, WatchedBackend } from './types.js';

export interface HysteresisPolicy {
  failAfter: number;
  recoverAfter: number;
  /** A device's free memory must move by this fraction of its total to be a change. */
  freeMemoryFraction: number;
}

export interface Observation {
  check: CheckKind;
  saw: string;
  /** The backend as this check found it alive; undefined for a failed check. */
  alive?: Omit<Backend, 'sources'>;
}

export type Transition = { type: 'up' | 'down' } | { type: 'changed'; changes: FieldChange[] };

const total = (b: { rpc?: Backend['rpc'] }) => b.rpc?.devices.reduce((n, d) => n + d.totalBytes, 0) ?? null;

/** A followed backend: its public view, and the free memory last reported per device. */
export interface Tracked {
  view: WatchedBackend;
  /** Free memory moves are reported against this baseline, so a slow drift adds up to a change. */
  reportedFree: number[];
}

export function track(view: WatchedBackend): Tracked {
  return { view, reportedFree: view.rpc?.devices.map((d) => d.freeBytes) ?? [] };
}

/**
 * What moved between what was last reported and what a check sees. Fields a check could not
 * see (a held server answers no HELLO) are not compared: not knowing is not a change.
 */
export function changesBetween(
  tracked: Tracked,
  now: Omit<Backend, 'sources'>,
  freeMemoryFraction: number,
): FieldChange[] {
  const before = tracked.view;
  const changes: FieldChange[] = [];
  if (now.health !== undefined && now.health !== before.health) {
    changes.push({ field: 'health', from: before.health ?? null, to: now.health });
  }
  if (!now.rpc || !before.rpc) return changes;
  if (now.rpc.protocol !== before.rpc.protocol) {
    changes.push({ field: 'protocol', from: before.rpc.protocol, to: now.rpc.protocol });
  }
  // Device memory is known only from a HELLO that asked for it (ggml-rpc 3.x and later).
  if (now.rpc.devices.length === 0) return changes;
  if (now.rpc.devices.length !== before.rpc.devices.length) {
    changes.push({ field: 'devices', from: before.rpc.devices.length, to: now.rpc.devices.length });
    return changes;
  }
  if (total(now) !== total(before)) changes.push({ field: 'totalBytes', from: total(before), to: total(now) });
  now.rpc.devices.forEach((device, i) => {
    const reported = tracked.reportedFree[i];
    if (reported === undefined) return;
    if (Math.abs(device.freeBytes - reported) >= freeMemoryFraction * Math.max(device.totalBytes, 1)) {
      changes.push({ field: 'freeBytes', device: device.index, from: reported, to: device.freeBytes });
    }
  });
  return changes;
}

/** Applies one observation (counters, last check, details) and says what changed, if anything. */
export function observe(
  tracked: Tracked,
  observation: Observation,
  policy: HysteresisPolicy,
  now: Date,
): Transition | undefined {
  const view = tracked.view;
  const at = now.toISOString();
  const { alive } = observation;
  view.lastCheck = { at, check: observation.check, ok: alive !== undefined, saw: observation.saw };
  if (!alive) {
    view.successes = 0;
    view.failures += 1;
    if (view.state === 'up' && view.failures >= policy.failAfter) {
      view.state = 'down';
      view.since = at;
      view.flaps += 1;
      return { type: 'down' };
    }
    return undefined;
  }
  view.failures = 0;
  view.successes += 1;
  view.lastSeen = at;
  const changes = changesBetween(tracked, alive, policy.freeMemoryFraction);
  adopt(tracked, alive);
  if (view.state === 'down') {
    if (view.successes < policy.recoverAfter) return undefined;
    view.state = 'up';
    view.since = at;
    tracked.reportedFree = view.rpc?.devices.map((d) => d.freeBytes) ?? [];
    return { type: 'up' };
  }
  if (changes.length === 0) return undefined;
  tracked.reportedFree = view.rpc?.devices.map((d) => d.freeBytes) ?? [];
  return { type: 'changed', changes };
}

/** Takes what a good check saw; keeps the last HELLO's details when this check had none. */
function adopt(tracked: Tracked, alive: Omit<Backend, 'sources'>): void {
  const view = tracked.view;
  view.verified = alive.verified;
  if (alive.rttMs !== undefined) view.rttMs = alive.rttMs;
  if (alive.health !== undefined) view.health = alive.health;
  if (alive.evidence !== undefined) view.evidence = alive.evidence;
  if (alive.rpc && (alive.rpc.devices.length > 0 || !view.rpc)) view.rpc = alive.rpc;
  else if (alive.rpc && view.rpc) view.rpc = { ...alive.rpc, devices: view.rpc.devices };
}
