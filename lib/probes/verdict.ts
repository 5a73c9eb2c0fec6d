// The one rule, shared by both engines, that turns what the probes saw into a verdict.
import type { GrpcDetails, ProbeStep, ProbeVerdict } from './types.js';

/** The newest ggml-rpc protocol the probe knows (llama.cpp/ggml 2026-08, shared/docs). */
export const NEWEST_RPC_PROTOCOL = '5.1.0';

export interface VerdictContext {
  /** The coordinator's ggml-rpc version, "x.y.z"; compatibility is judged against it. */
  rpcClientVersion: string;
  grpcService: string;
  probeTimeoutMs: number;
}

export function parseVersion(text: string): [number, number, number] | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) return null;
  const v = [Number(m[1]), Number(m[2]), Number(m[3])] as [number, number, number];
  return v.every((n) => n <= 255) ? v : null;
}

/** llama.cpp's rule (negotiate_hello): same major, and a server minor <= the client's. */
export function rpcCompatible(server: readonly number[], client: readonly number[]): boolean {
  return server[0] === client[0] && (server[1] ?? 0) <= (client[1] ?? 0);
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

function rpcVerdict(step: ProbeStep, ctx: VerdictContext): ProbeVerdict | null {
  if (step.outcome === 'silent') {
    return {
      service: 'ggml-rpc',
      health: 'busy',
      reason: `accepted the connection but did not answer HELLO within ${ctx.probeTimeoutMs} ms: a ggml-rpc server busy with another client (it serves one at a time)`,
    };
  }
  if (!step.version) return null;
  const protocol = step.version.join('.');
  const client = parseVersion(ctx.rpcClientVersion) ?? [5, 1, 0];
  const compatible = rpcCompatible(step.version, client);
  const rpc = {
    protocol,
    compatible,
    client: client.join('.'),
    devices: step.devices ?? [],
    legacyHello: step.legacyHello ?? false,
  };
  if (step.outcome !== 'recognized') {
    return {
      service: 'ggml-rpc',
      health: 'unknown',
      reason: `ggml-rpc ${protocol} answered HELLO, then: ${step.detail}`,
      rpc,
    };
  }
  if (!compatible) {
    return {
      service: 'ggml-rpc',
      health: 'incompatible',
      reason: `ggml-rpc ${protocol} does not match client ${rpc.client} (needs the same major version and a server minor <= ${client[1]})`,
      rpc,
    };
  }
  const devices = rpc.devices.map((d) => `${formatBytes(d.freeBytes)} free of ${formatBytes(d.totalBytes)}`);
  const extra = step.detail ? `; ${step.detail}` : '';
  return {
    service: 'ggml-rpc',
    health: 'serving',
    reason: `ggml-rpc ${protocol}, ${rpc.devices.length} device${rpc.devices.length === 1 ? '' : 's'}${devices.length ? ` (${devices.join(', ')})` : ''}${extra}`,
    rpc,
  };
}

function grpcVerdict(step: ProbeStep, ctx: VerdictContext): ProbeVerdict | null {
  if (step.outcome !== 'recognized') return null;
  const service = ctx.grpcService;
  const named = service ? `service "${service}"` : 'the server';
  const code = step.grpcStatus ?? -1;
  const grpc: GrpcDetails = { status: 'ERROR', service, code };
  if (step.grpcMessage) grpc.message = percentDecode(step.grpcMessage);
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

/** The verdict for one open port from every probe step that ran on it, in order. */
export function verdictFromSteps(steps: readonly ProbeStep[], ctx: VerdictContext): ProbeVerdict {
  const last = steps.at(-1);
  if (last) {
    const verdict =
      last.kind === 'ggml-rpc'
        ? rpcVerdict(last, ctx)
        : last.kind === 'grpc'
          ? grpcVerdict(last, ctx)
          : httpVerdict(last);
    if (verdict) return verdict;
  }
  if (last?.outcome === 'silent' || last?.outcome === 'stalled') {
    return {
      service: 'unknown',
      health: 'unknown',
      reason: `${last.kind}: ${last.detail} within ${ctx.probeTimeoutMs} ms`,
    };
  }
  const said = steps.map((s) => `${s.kind}: ${s.detail || s.outcome}`).join('; ');
  return { service: 'unknown', health: 'unknown', reason: said ? `no known service answered (${said})` : 'not probed' };
}
