// The one rule, shared by both engines, that turns what the probes saw into a verdict.
import { peerText } from '../common/peer-text.js';
import { parseVersion } from '../common/version.js';
import type { GrpcDetails, ProbeStep, ProbeVerdict, RpcDetails } from './types.js';

export { NEWEST_RPC_PROTOCOL } from './ggml-rpc.js';

export interface VerdictContext {
  /**
   * The coordinator's ggml-rpc version, "x.y.z": compatibility is judged against it. Without
   * one, a server is described by the clients that can use it.
   */
  rpcClientVersion?: string;
  grpcService: string;
  probeTimeoutMs: number;
}

/** llama.cpp's rule (negotiate_hello): same major, and a server minor <= the client's. */
export function rpcCompatible(server: readonly number[], client: readonly number[]): boolean {
  return server[0] === client[0] && (server[1] ?? 0) <= (client[1] ?? 0);
}

/** The clients that can use a server, by that rule, as a semver range. */
export function usableBy(server: readonly number[]): string {
  const major = server[0] ?? 0;
  return `>=${major}.${server[1] ?? 0}.0 <${major + 1}.0.0`;
}

const SERVING_STATUS: Record<number, GrpcDetails['status']> = {
  0: 'UNKNOWN',
  1: 'SERVING',
  2: 'NOT_SERVING',
  3: 'SERVICE_UNKNOWN',
};

/** grpc-message is percent-encoded on the wire (gRPC PROTOCOL-HTTP2.md). */
function percentDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function formatBytes(n: number): string {
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(1)} GiB` : `${Math.round(n / 2 ** 20)} MiB`;
}

/** Why a silent port is only a guess; the resolver keeps it only when something corroborates it. */
export function silentReason(probeTimeoutMs: number): string {
  return `accepted the connection and answered neither HELLO nor a newline within ${probeTimeoutMs} ms: perhaps a ggml-rpc server busy with another client (it serves one at a time), perhaps another service waiting for more input`;
}

function rpcVerdict(step: ProbeStep, ctx: VerdictContext): ProbeVerdict | null {
  if (step.outcome === 'silent') {
    return { service: 'ggml-rpc', health: 'busy', guess: true, reason: silentReason(ctx.probeTimeoutMs) };
  }
  if (!step.version) return null;
  const protocol = step.version.join('.');
  const client = ctx.rpcClientVersion === undefined ? null : parseVersion(ctx.rpcClientVersion);
  const compatible = client ? rpcCompatible(step.version, client) : true;
  const rpc: RpcDetails = {
    protocol,
    usableBy: usableBy(step.version),
    devices: step.devices ?? [],
    legacyHello: step.legacyHello ?? false,
  };
  if (client) {
    rpc.compatible = compatible;
    rpc.client = client.join('.');
  }
  if (step.outcome !== 'recognized') {
    return {
      service: 'ggml-rpc',
      health: 'unknown',
      reason: `ggml-rpc ${protocol} answered HELLO, then: ${step.detail}`,
      rpc,
    };
  }
  if (client && !compatible) {
    return {
      service: 'ggml-rpc',
      health: 'incompatible',
      reason: `ggml-rpc ${protocol} does not match client ${rpc.client} (needs the same major version and a server minor <= ${client[1]}); usable by clients ${rpc.usableBy}`,
      rpc,
    };
  }
  const devices = rpc.devices.map((d) => `${formatBytes(d.freeBytes)} free of ${formatBytes(d.totalBytes)}`);
  const extra = step.detail ? `; ${step.detail}` : '';
  return {
    service: 'ggml-rpc',
    health: 'serving',
    // No devices means they were not queried (a server always has one): no count is claimed.
    reason: `ggml-rpc ${protocol}${devices.length ? `, ${devices.length} device${devices.length === 1 ? '' : 's'} (${devices.join(', ')})` : ''}${extra}`,
    rpc,
  };
}

function grpcVerdict(step: ProbeStep, ctx: VerdictContext): ProbeVerdict | null {
  if (step.outcome !== 'recognized') return null;
  const service = ctx.grpcService;
  const named = service ? `service "${service}"` : 'the server';
  const code = step.grpcStatus ?? -1;
  const grpc: GrpcDetails = { status: 'ERROR', service, code };
  if (step.grpcMessage) grpc.message = peerText(percentDecode(step.grpcMessage), 256);
  if (code === 0) {
    grpc.status = SERVING_STATUS[step.servingStatus ?? 0] ?? 'UNKNOWN';
    if (grpc.status === 'SERVING')
      return { service: 'grpc', health: 'serving', reason: `gRPC health: ${named} is SERVING`, grpc };
    if (grpc.status === 'NOT_SERVING') {
      return { service: 'grpc', health: 'not-serving', reason: `gRPC health: ${named} is NOT_SERVING`, grpc };
    }
    return { service: 'grpc', health: 'unknown', reason: `gRPC health: ${named} is ${grpc.status}`, grpc };
  }
  if (code === 5) {
    grpc.status = 'SERVICE_UNKNOWN';
    return { service: 'grpc', health: 'unknown', reason: `gRPC health: the server does not know ${named}`, grpc };
  }
  if (code === 12) {
    grpc.status = 'UNIMPLEMENTED';
    return {
      service: 'grpc',
      health: 'unknown',
      reason: 'a gRPC server without the grpc.health.v1 health service (UNIMPLEMENTED)',
      grpc,
    };
  }
  return {
    service: 'grpc',
    health: 'unknown',
    reason: `gRPC health check failed with grpc-status ${code}${grpc.message ? ` (${grpc.message})` : ''}`,
    grpc,
  };
}

function httpVerdict(step: ProbeStep): ProbeVerdict | null {
  const http = step.http;
  if (step.outcome !== 'recognized' || !http) return null;
  const version = http.version ? ` ${http.version}` : '';
  if (http.product === 'ollama') {
    return { service: 'ollama', health: 'serving', reason: `Ollama${version}`, http };
  }
  if (http.product === 'llama-server') {
    if (http.status === 200)
      return { service: 'llama-server', health: 'serving', reason: `llama-server${version}, /health ok`, http };
    const why = http.message ? `: ${http.message}` : '';
    return {
      service: 'llama-server',
      health: http.status === 503 ? 'not-serving' : 'unknown',
      reason: `llama-server${version} /health answered ${http.status}${why}`,
      http,
    };
  }
  const models = http.models?.length ? `, models: ${http.models.slice(0, 3).join(', ')}` : '';
  const name = http.product === 'vllm' ? 'vLLM' : 'OpenAI-compatible server';
  return { service: 'openai-compatible', health: 'serving', reason: `${name}${version}${models}`, http };
}

/**
 * The first step the port answered with bytes of another protocol than ggml-rpc. A ggml-rpc
 * server sends nothing but replies to its own requests (it closes on anything else), so such a
 * port is no ggml-rpc server, busy or not, whatever a later step saw.
 */
function foreignAnswer(steps: readonly ProbeStep[]): ProbeStep | undefined {
  return steps.find((s) => (s.received ?? 0) > 0 && (s.kind !== 'ggml-rpc' || s.outcome === 'not-recognized'));
}

/** The verdict for one open port from every probe step that ran on it, in order. */
export function verdictFromSteps(steps: readonly ProbeStep[], ctx: VerdictContext): ProbeVerdict {
  const last = steps.at(-1);
  const foreign = foreignAnswer(steps);
  if (last) {
    const verdict =
      last.kind === 'ggml-rpc'
        ? rpcVerdict(last, ctx)
        : last.kind === 'grpc'
          ? grpcVerdict(last, ctx)
          : httpVerdict(last);
    // Silence is a busy ggml-rpc server only on a port that said nothing else.
    if (verdict && !(verdict.guess && foreign)) return verdict;
  }
  if (last?.outcome === 'silent' || last?.outcome === 'stalled') {
    const within = `${last.kind}: ${last.detail} within ${ctx.probeTimeoutMs} ms`;
    return {
      service: 'unknown',
      health: 'unknown',
      reason:
        foreign && foreign !== last
          ? `another service: the ${foreign.kind} probe got an answer that is not ggml-rpc (${peerText(foreign.detail, 160)}); ${within}`
          : within,
    };
  }
  const said = steps.map((s) => `${s.kind}: ${s.detail || s.outcome}`).join('; ');
  return { service: 'unknown', health: 'unknown', reason: said ? `no known service answered (${said})` : 'not probed' };
}
