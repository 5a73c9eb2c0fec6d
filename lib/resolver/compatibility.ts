// The compatibility rule: which live ggml-rpc servers one llama.cpp client can use together.
// resolve applies it to its result; the watcher to its usable set (and so serve, --on-change,
// `resolve --from`): a list handed on is always one a single client can use.
import { formatHostPort } from '../common/host-port.js';
import { parseVersion } from '../common/version.js';
import { rpcCompatible } from '../probes/verdict.js';
import type { Backend } from './types.js';

export const GROUP_RULE =
  'the servers one client can use together: the most servers, then the newest major, then the most memory';
export const CLIENT_RULE = 'same major, server minor <= the client minor (llama.cpp)';

export interface Compatibility<B> {
  keep: B[];
  /** Left out for their protocol, each with why. */
  drop: { backend: B; reason: string }[];
  /** Without a client version: the clients that can use the kept group. */
  usableBy?: string;
  /** One line for a person when servers were left out. */
  warning?: string;
}

type Described = Pick<Backend, 'host' | 'port' | 'rpc'>;

const majorOf = (b: Described) => (b.rpc ? parseVersion(b.rpc.protocol)?.[0] : undefined);

/**
 * Without a client version: one major group (its clients need the group's highest minor).
 * The group with the most servers wins; on a tie the newest major (a client built this year
 * is far likelier), then the most memory. A server whose protocol is unknown (busy, vouched
 * for by a witness) is kept: nothing says it differs.
 */
export function chooseCompatibleGroup<B extends Described>(backends: readonly B[]): Compatibility<B> {
  const groups = new Map<number, B[]>();
  for (const b of backends) {
    const major = majorOf(b);
    if (major !== undefined) groups.set(major, [...(groups.get(major) ?? []), b]);
  }
  if (groups.size === 0) return { keep: [...backends], drop: [] };
  const memory = (group: B[]) =>
    group.reduce((sum, b) => sum + (b.rpc?.devices.reduce((n, d) => n + d.totalBytes, 0) ?? 0), 0);
  const [major, chosen] = [...groups].sort(
    ([ma, a], [mb, b]) => b.length - a.length || mb - ma || memory(b) - memory(a),
  )[0] as [number, B[]];
  const minor = Math.max(...chosen.map((b) => (parseVersion(b.rpc?.protocol ?? '') ?? [0, 0])[1] ?? 0));
  const usableBy = `>=${major}.${minor}.0 <${major + 1}.0.0`;
  const rejected = backends.filter((b) => majorOf(b) !== undefined && majorOf(b) !== major);
  if (rejected.length === 0) return { keep: [...backends], drop: [], usableBy };
  const why = `no single client can use it beside the ${chosen.length} server${chosen.length === 1 ? '' : 's'} of protocol ${major}.x (chosen for the most servers, then the newest major, then the most memory); --rpc-version judges against your client`;
  return {
    keep: backends.filter((b) => !rejected.includes(b)),
    drop: rejected.map((backend) => ({ backend, reason: `ggml-rpc ${backend.rpc?.protocol}: ${why}` })),
    usableBy,
    warning: `servers of several ggml-rpc majors: kept ${chosen.length} of ${major}.x (clients ${usableBy}); dropped ${rejected.map((b) => `${formatHostPort(b)} (${b.rpc?.protocol})`).join(', ')}`,
  };
}

/** With the client's version ("x.y.z"): llama.cpp's own rule, server by server. */
export function judgeAgainstClient<B extends Described>(backends: readonly B[], client: string): Compatibility<B> {
  const version = parseVersion(client) as [number, number, number];
  const keep: B[] = [];
  const drop: Compatibility<B>['drop'] = [];
  for (const b of backends) {
    const server = b.rpc ? parseVersion(b.rpc.protocol) : null;
    if (!server || rpcCompatible(server, version)) keep.push(b);
    else {
      drop.push({
        backend: b,
        reason: `ggml-rpc ${b.rpc?.protocol} does not match client ${client} (needs the same major version and a server minor <= ${version[1]})`,
      });
    }
  }
  return { keep, drop };
}

/** The one rule: against the client when its version is known, else the best group. */
export function applyCompatibility<B extends Described>(backends: readonly B[], client?: string): Compatibility<B> {
  return client === undefined ? chooseCompatibleGroup(backends) : judgeAgainstClient(backends, client);
}
