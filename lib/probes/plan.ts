// Which probes run on an open port, in what order, and which of them the engine runs right
// after its connect (in one pass) versus afterwards in TypeScript (HTTP, and what follows it).
import { PROBE_PLANS } from '../scan/addon/layout.js';
import { GGML_RPC_PORT, type ProbeName, type ProbeOption } from '../common/options.js';

export const OLLAMA_PORT = 11434;

/**
 * The probe order for a port. `auto`: 50052 tries ggml-rpc then gRPC; 11434 Ollama; any other
 * port HTTP, then gRPC, then ggml-rpc (an RPC server on a port of its own). Each step runs only
 * when the one before it saw something that is not its protocol.
 */
export function chainFor(port: number, option: ProbeOption | undefined): ProbeName[] {
  if (!option) return [];
  if (option === 'auto') {
    if (port === GGML_RPC_PORT) return ['ggml-rpc', 'grpc'];
    if (port === OLLAMA_PORT) return ['http'];
    return ['http', 'grpc', 'ggml-rpc'];
  }
  return [...option];
}

/** The plan code of a run of engine probes (no HTTP in it). */
export function planCode(kinds: readonly ProbeName[]): number {
  const code = PROBE_PLANS[kinds.join(',')];
  if (code === undefined) throw new Error(`no engine plan for ${kinds.join(',')}`);
  return code;
}

export function planKinds(code: number): ProbeName[] {
  const entry = Object.entries(PROBE_PLANS).find(([, c]) => c === code);
  return entry && entry[0] ? (entry[0].split(',') as ProbeName[]) : [];
}

/** Splits a chain into the leading engine probes (run in the scan pass) and the rest. */
export function splitChain(chain: readonly ProbeName[]): { plan: number; rest: ProbeName[] } {
  let n = 0;
  while (n < chain.length && chain[n] !== 'http') n++;
  return { plan: planCode(chain.slice(0, n)), rest: chain.slice(n) };
}

/** Splits the rest of a chain into steps: 'http', or a run of engine probes as a plan code. */
export function restSteps(rest: readonly ProbeName[]): ('http' | number)[] {
  const steps: ('http' | number)[] = [];
  for (let i = 0; i < rest.length;) {
    if (rest[i] === 'http') {
      steps.push('http');
      i++;
      continue;
    }
    let j = i;
    while (j < rest.length && rest[j] !== 'http') j++;
    steps.push(planCode(rest.slice(i, j)));
    i = j;
  }
  return steps;
}
