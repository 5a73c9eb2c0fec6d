import grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { describe, expect, it, onTestFinished } from 'vitest';

import { probe } from '../../lib/scan/job.js';
import { countFds, settledFdCount } from '../helpers/net.js';

async function grpcServer(
  host: string,
  port: number,
  statuses?: Record<string, 'SERVING' | 'NOT_SERVING'>,
): Promise<number> {
  const server = new grpc.Server();
  if (statuses) new HealthImplementation(statuses).addToServer(server);
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (error, p) =>
      error ? reject(error) : resolve(p),
    ),
  );
  onTestFinished(() => new Promise<void>((resolve) => server.tryShutdown(() => resolve())));
  return bound;
}

describe.each(['native', 'js'] as const)('gRPC health probe, %s engine', (engine) => {
  it('SERVING, NOT_SERVING and an unknown service name', async () => {
    const port = await grpcServer('127.0.0.131', 0, { '': 'SERVING', 'llm.Backend': 'NOT_SERVING' });
    const before = countFds();
    const whole = await probe('127.0.0.131', port, { engine, service: 'grpc' });
    expect(whole).toMatchObject({
      service: 'grpc',
      health: 'serving',
      grpc: { status: 'SERVING', service: '', code: 0 },
    });
    const named = await probe('127.0.0.131', port, { engine, service: 'grpc', grpcService: 'llm.Backend' });
    expect(named).toMatchObject({ health: 'not-serving', grpc: { status: 'NOT_SERVING', service: 'llm.Backend' } });
    const unknown = await probe('127.0.0.131', port, { engine, service: 'grpc', grpcService: 'no.Such' });
    expect(unknown).toMatchObject({ service: 'grpc', health: 'unknown', grpc: { status: 'SERVICE_UNKNOWN', code: 5 } });
    expect(unknown.grpc?.message).toBe('Health status unknown for service no.Such');
    expect(await settledFdCount(before)).toBe(before);
  });

  it('says so when a gRPC server has no health service', async () => {
    const port = await grpcServer('127.0.0.132', 0);
    const r = await probe('127.0.0.132', port, { engine, service: 'grpc' });
    expect(r).toMatchObject({ service: 'grpc', health: 'unknown', grpc: { status: 'UNIMPLEMENTED', code: 12 } });
    expect(r.reason).toBe('a gRPC server without the grpc.health.v1 health service (UNIMPLEMENTED)');
  });

  it('auto on 50052 tries ggml-rpc first, then recognises gRPC', async () => {
    await grpcServer('127.0.0.133', 50052, { '': 'SERVING' });
    const r = await probe('127.0.0.133', 50052, { engine });
    expect(r).toMatchObject({ service: 'grpc', health: 'serving' });
  });

  it('auto on another port tries HTTP first, then recognises gRPC', async () => {
    const port = await grpcServer('127.0.0.134', 0, { '': 'SERVING' });
    const r = await probe('127.0.0.134', port, { engine });
    expect(r).toMatchObject({ service: 'grpc', health: 'serving' });
  });
});
