// A resolve's word on every backend, taken into the followed set: proven ones observed alive
// (new ones added), dropped ones observed failing, and one no source names any more removed.
import { formatHostPort } from '../common/host-port.js';
import type { Resolution, SourceName } from '../resolver/types.js';
import type { FollowedSet } from './followed.js';
import type { Covers } from './scope.js';

/** The backends a resolve found alive: observed, or followed and added. */
async function takeAlive(followedSet: FollowedSet, resolution: Resolution): Promise<Set<string>> {
  const seen = new Set<string>();
  const now = new Date().toISOString();
  for (const backend of resolution.backends) {
    const key = formatHostPort(backend);
    seen.add(key);
    const { sources, ...alive } = backend;
    const saw = backend.reason ?? 'named and verified';
    const known = followedSet.get(key);
    if (known) {
      known.view.sources = [...sources];
      if (backend.dnsSd) known.view.dnsSd = backend.dnsSd;
      else if (!sources.includes('dns-sd')) delete known.view.dnsSd; // withdrawn: its instance and TXT with it
      known.view.namedAt = { ...known.view.namedAt, ...Object.fromEntries(sources.map((s) => [s, now])) };
      if (backend.evidence === 'hello') known.lastConnect = performance.now();
      followedSet.apply(known, { check: 'resolve', saw, alive });
      continue;
    }
    const followed = await followedSet.follow(backend);
    if (!followed) continue;
    followedSet.added(followed, { check: 'resolve', saw });
  }
  return seen;
}

/**
 * Takes one resolution. `scanned` says which addresses this resolve's scan covered (a subnet
 * another watcher leased was not): a backend there that the scan did not find failed a
 * check; one elsewhere was not missed.
 */
export async function takeResolution(
  followedSet: FollowedSet,
  resolution: Resolution,
  scanned: Covers | undefined,
): Promise<void> {
  const seen = await takeAlive(followedSet, resolution);
  const dropped = new Map<string, string>();
  for (const report of resolution.sources) {
    for (const d of report.dropped) dropped.set(formatHostPort(d), `${report.name}: ${d.reason}`);
  }
  const consulted = new Set<SourceName>(
    resolution.sources.filter((s) => s.status === 'ok' || s.status === 'empty').map((s) => s.name),
  );
  for (const followed of [...followedSet.values()]) {
    if (seen.has(followed.key)) continue;
    const reason = dropped.get(followed.key);
    if (reason !== undefined) {
      followedSet.apply(followed, { check: 'resolve', saw: reason });
      continue;
    }
    const sources = followed.view.sources;
    const scannedHere = consulted.has('scan') && scanned?.(followed.endpoint, followed.endpoint.port) === true;
    if (sources.includes('scan') && scannedHere) {
      followedSet.apply(followed, { check: 'resolve', saw: 'the scan did not find the port open' });
    } else if (sources.length > 0 && sources.every((s) => (s === 'scan' ? scannedHere : consulted.has(s)))) {
      // Every source that named it was asked again and none names it now: a config line
      // removed, a coordinator restarted without it, a registry entry expired.
      followedSet.remove(followed, 'resolve', `no source names it any more (${sources.join(', ')})`);
    }
  }
}
