// Misbehaving peers: every case ends in a reason, within the probe deadlines, with the same
// verdict from both engines and no descriptor left open.
import { describe, expect, it } from 'vitest';

import { probe, type ScanResult } from '../../lib/scan/job.js';
import { misbehavingPeer, type Misbehaviour } from '../helpers/adversarial.js';
import { countFds, settledFdCount } from '../helpers/net.js';

const PROBE_TIMEOUT_MS = 600;

const expected: Record<Misbehaviour, { service: string; health: string; reason: RegExp }> = {
  silent: {
    service: 'ggml-rpc',
    health: 'busy',
    reason: /answered neither HELLO nor a newline within 600 ms: perhaps/,
  },
  trickle: {
    service: 'unknown',
    health: 'unknown',
    reason: /ggml-rpc: 1 of 36 bytes of the HELLO reply arrived within 600 ms/,
  },
  random: {
    service: 'unknown',
    health: 'unknown',
    reason: /no known service answered \(ggml-rpc: sent ".+", not a ggml-rpc HELLO reply; grpc: not an HTTP\/2 server/,
  },
  'huge-rpc-size': {
    service: 'unknown',
    health: 'unknown',
    reason: /grpc: the response stopped after 8 bytes within 600 ms/,
  },
  // The native probe rejects the frame header at once; nghttp2 (the JS twin) waits for the
  // 16 MiB body and stalls. The verdict is the same; the reasons differ.
  'huge-h2-frame': {
    service: 'unknown',
    health: 'unknown',
    reason: /grpc: .*(exceeds the 16384 allowed|stopped after 18 bytes)/,
  },
  'rst-mid-frame': { service: 'unknown', health: 'unknown', reason: /grpc: / },
  'close-at-once': {
    service: 'unknown',
    health: 'unknown',
    // closed or reset: whether our request reached the peer before it closed is a race.
    reason:
      /ggml-rpc: (closed|reset) the connection at both HELLO generations without a byte.*; grpc: (closed|reset) the connection without an HTTP\/2 reply/,
  },
};

describe('adversarial peers', () => {
  const cases = Object.keys(expected) as Misbehaviour[];
  it.each(cases.map((mode, i) => [mode, `127.0.0.${150 + i}`] as const))(
    '%s: both engines end with the same verdict and a reason, in time, leaking nothing',
    async (mode, host) => {
      const port = await misbehavingPeer(mode, host);
      const verdicts: ScanResult[] = [];
      for (const engine of ['native', 'js'] as const) {
        const before = countFds();
        const started = performance.now();
        const r = await probe(host, port, { engine, service: ['ggml-rpc', 'grpc'], probeTimeoutMs: PROBE_TIMEOUT_MS });
        // Two probe steps at most, each bounded by its own deadline.
        expect(performance.now() - started).toBeLessThan(2 * PROBE_TIMEOUT_MS + 1000);
        expect(r.state).toBe('open');
        expect(r.reason, `${engine}: ${r.reason}`).toMatch(expected[mode].reason);
        expect(await settledFdCount(before)).toBe(before);
        verdicts.push(r);
      }
      const [native, js] = verdicts as [ScanResult, ScanResult];
      expect({ service: native.service, health: native.health }).toEqual({
        service: expected[mode].service,
        health: expected[mode].health,
      });
      expect({ service: js.service, health: js.health }).toEqual({ service: native.service, health: native.health });
    },
  );
});
