import { describe, expect, it } from 'vitest';

import { chainFor, restSteps, splitChain } from '../../lib/probes/chain.js';
import type { ProbeStep } from '../../lib/probes/types.js';
import { rpcCompatible, verdictFromSteps } from '../../lib/probes/verdict.js';

const ctx = { rpcClientVersion: '5.1.0', grpcService: '', probeTimeoutMs: 2000 };
const step = (s: Partial<ProbeStep>): ProbeStep => ({
  kind: 'ggml-rpc',
  outcome: 'recognized',
  detail: '',
  elapsedMs: 1,
  ...s,
});

describe('llama.cpp compatibility rule', () => {
  it.each([
    [[5, 0, 0], [5, 1, 0], true],
    [[5, 1, 3], [5, 1, 0], true],
    [[5, 2, 0], [5, 1, 0], false],
    [[4, 0, 0], [5, 1, 0], false],
    [[6, 0, 0], [5, 1, 0], false],
  ])('server %j with client %j: %s', (server, client, expected) => {
    expect(rpcCompatible(server, client)).toBe(expected);
  });
});

describe('verdictFromSteps', () => {
  it('ggml-rpc serving, incompatible and busy', () => {
    expect(verdictFromSteps([step({ version: [5, 0, 0], devices: [] })], ctx)).toMatchObject({
      service: 'ggml-rpc',
      health: 'serving',
    });
    expect(verdictFromSteps([step({ version: [3, 6, 1], legacyHello: true })], ctx)).toMatchObject({
      health: 'incompatible',
      rpc: { protocol: '3.6.1', compatible: false, legacyHello: true },
    });
    expect(verdictFromSteps([step({ outcome: 'silent', detail: 'x' })], ctx)).toMatchObject({
      service: 'ggml-rpc',
      health: 'busy',
    });
  });

  it('a ggml-rpc server that answered HELLO and then broke off is identified, health unknown', () => {
    const v = verdictFromSteps(
      [step({ version: [5, 0, 0], outcome: 'protocol-error', detail: 'closed during DEVICE_COUNT' })],
      ctx,
    );
    expect(v).toMatchObject({
      service: 'ggml-rpc',
      health: 'unknown',
      reason: 'ggml-rpc 5.0.0 answered HELLO, then: closed during DEVICE_COUNT',
    });
  });

  it.each([
    [{ grpcStatus: 0, servingStatus: 1 }, 'serving', 'SERVING'],
    [{ grpcStatus: 0, servingStatus: 2 }, 'not-serving', 'NOT_SERVING'],
    [{ grpcStatus: 0, servingStatus: 3 }, 'unknown', 'SERVICE_UNKNOWN'],
    [{ grpcStatus: 0, servingStatus: 0 }, 'unknown', 'UNKNOWN'],
    [{ grpcStatus: 5 }, 'unknown', 'SERVICE_UNKNOWN'],
    [{ grpcStatus: 12 }, 'unknown', 'UNIMPLEMENTED'],
    [{ grpcStatus: 14, grpcMessage: 'going%20away' }, 'unknown', 'ERROR'],
  ])('gRPC %o -> %s %s', (fields, health, status) => {
    const v = verdictFromSteps([step({ kind: 'grpc', ...fields })], ctx);
    expect(v).toMatchObject({ service: 'grpc', health, grpc: { status } });
  });

  it('decodes the percent-encoded grpc-message', () => {
    const v = verdictFromSteps([step({ kind: 'grpc', grpcStatus: 14, grpcMessage: 'going%20away' })], ctx);
    expect(v.reason).toBe('gRPC health check failed with grpc-status 14 (going away)');
  });

  it('names what every probe saw when none recognised the service', () => {
    const v = verdictFromSteps(
      [
        step({ kind: 'http', outcome: 'not-recognized', detail: 'not an HTTP server' }),
        step({ kind: 'grpc', outcome: 'not-recognized', detail: 'closed' }),
      ],
      ctx,
    );
    expect(v).toEqual({
      service: 'unknown',
      health: 'unknown',
      reason: 'no known service answered (http: not an HTTP server; grpc: closed)',
    });
  });
});

describe('probe chains', () => {
  it('auto picks by port', () => {
    expect(chainFor(50052, 'auto')).toEqual(['ggml-rpc', 'grpc']);
    expect(chainFor(11434, 'auto')).toEqual(['http']);
    expect(chainFor(8080, 'auto')).toEqual(['http', 'grpc', 'ggml-rpc']);
    expect(chainFor(8080, false)).toEqual([]);
  });

  it('runs the leading engine probes in the scan pass and the rest after', () => {
    expect(splitChain(['ggml-rpc', 'grpc'])).toEqual({ plan: 3, rest: [] });
    expect(splitChain(['http', 'grpc', 'ggml-rpc'])).toEqual({ plan: 0, rest: ['http', 'grpc', 'ggml-rpc'] });
    expect(restSteps(['http', 'grpc', 'ggml-rpc'])).toEqual(['http', 4]);
    expect(restSteps(['grpc', 'http'])).toEqual([2, 'http']);
  });
});
