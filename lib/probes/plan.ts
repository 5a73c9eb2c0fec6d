// Which probes run on an open port, in what order, and which of them the engine runs right
// after its connect (in one pass) versus afterwards in TypeScript (HTTP, and what follows it).
import { InvalidOptionError } from '../common/errors.js';
import { PROBE_PLANS } from '../scan/addon/layout.js';
import { PROBE_NAMES, type ProbeName } from './types.js';

export type ProbeOption = 'auto' | readonly ProbeName[] | false;

export const GGML_RPC_PORT = 50052;
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

export function checkProbeOption(option: unknown): asserts option is ProbeOption | undefined {
  if (option === undefined || option === false || option === 'auto') return;
  if (!Array.isArray(option) || option.length === 0) {
    throw new InvalidOptionError(`probe: must be 'auto', false or a list of ${PROBE_NAMES.join(', ')}`);
  }
  for (const name of option) {
    if (!PROBE_NAMES.includes(name as ProbeName)) {
      throw new InvalidOptionError(`probe: unknown probe "${String(name)}"; known: ${PROBE_NAMES.join(', ')}`);
    }
  }
  if (new Set(option).size !== option.length) throw new InvalidOptionError('probe: each probe may appear once');
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
