// What the supervisor reads of llama-server's answers: /slots, /metrics, and where /health is.
import { describe, expect, it } from 'vitest';

import { healthUrlFor, idleFromMetrics, idleFromSlots } from '../../lib/run/coordinator-http.js';

describe('the coordinator over HTTP', () => {
  it("finds /health from llama-server's --host and --port, loopback for a wildcard, 8080 by default", () => {
    expect(healthUrlFor(['llama-server', '-m', 'x.gguf'])).toBe('http://127.0.0.1:8080/health');
    expect(healthUrlFor(['llama-server', '--host', '0.0.0.0', '--port', '9000'])).toBe('http://127.0.0.1:9000/health');
    expect(healthUrlFor(['llama-server', '--host=10.0.0.5', '--port=81'])).toBe('http://10.0.0.5:81/health');
    expect(healthUrlFor(['llama-server', '--host', '::1', '--port', '82'])).toBe('http://[::1]:82/health');
    expect(healthUrlFor(['llama-server', '--port', 'http'])).toBe('http://127.0.0.1:8080/health');
  });

  it('reads /slots: idle when no slot is processing, unknown for anything else', () => {
    expect(idleFromSlots('[{"id":0,"is_processing":false},{"id":1,"is_processing":false}]')).toBe(true);
    expect(idleFromSlots('[{"id":0,"is_processing":false},{"id":1,"is_processing":true}]')).toBe(false);
    expect(idleFromSlots('[]')).toBeUndefined();
    expect(idleFromSlots('{"error":"slots disabled"}')).toBeUndefined();
    expect(idleFromSlots('[{"id":0,"is_processing":"no"}]')).toBeUndefined();
    expect(idleFromSlots('[null]')).toBeUndefined();
    expect(idleFromSlots('not json')).toBeUndefined();
  });

  it('reads /metrics: llamacpp:requests_processing 0 is idle', () => {
    const metrics = (n: string) => `# HELP x\nllamacpp:prompt_tokens_total 10\nllamacpp:requests_processing ${n}\n`;
    expect(idleFromMetrics(metrics('0'))).toBe(true);
    expect(idleFromMetrics(metrics('2'))).toBe(false);
    expect(idleFromMetrics('llamacpp:requests_processing{slot="0"} 1\n')).toBe(false);
    expect(idleFromMetrics(metrics('NaN'))).toBeUndefined();
    expect(idleFromMetrics('llamacpp:requests_deferred 0\n')).toBeUndefined();
  });
});
