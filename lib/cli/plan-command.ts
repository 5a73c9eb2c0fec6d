// `scan-backends plan MODEL.gguf`: which usable ggml-rpc servers a model fits on, and the
// llama-server arguments that put it there. `--format args` prints exactly those arguments.
import { terminalSafe, peerText } from '../common/peer-text.js';
import { CACHE_TYPES, parseSize, type PlanOptions } from '../common/options.js';
import { formatBytes } from '../plan/fit.js';
import { planModel } from '../plan/index.js';
import type { PlanResult } from '../plan/types.js';
import { resolveBackends } from '../resolver/index.js';

import { EXIT, UsageError } from './exit-codes.js';
import { formatFlag, parseFlags, parseFormat, parseInteger } from './flags.js';
import { alignTable } from './output.js';
import { explain, fromServe, RESOLVE_FLAGS, resolveOptionsFromFlags } from './resolve-command.js';

export const PLAN_USAGE = `Usage: scan-backends plan MODEL.gguf [options]

Which of the usable ggml-rpc servers (as \`resolve\` finds and judges them: one protocol major,
live, not busy) a model fits on, and how to split it: the fewest servers, then the lowest RTT,
then the most headroom. Prints the --rpc list in the order llama.cpp numbers the devices, a
--tensor-split of whole layers (the output layer counts as one, on the last device; token
embeddings stay on the host), the bytes expected on each device and the headroom left.

Options:
      --ctx N            context size (default: the model's context_length, as llama-server
                         without -c); given, the arguments include -c N
      --cache-type T     f16 | q8_0 | q4_0: the KV cache type (default f16); a quantized V
                         cache needs flash attention: add -fa on
      --reserve SIZE     kept free on each device that gets layers, for llama.cpp's compute
                         buffer (13-19 MiB for a tiny model at -c 2048, more with context and
                         model width): 256MiB, 1GiB, 0 (default 512MiB)
      --format F         table | json | args (default: table on a terminal, else json);
                         args prints exactly what to append to llama-server, nothing else
      --explain          say on stderr what each source of the resolve did
  Where the servers come from: resolve's flags (--sources, --config, --subnet, -p, --redis,
  --rpc-version, --timeout, …; see resolve --help), or --from URL and --token-file to read a
  running \`scan-backends serve\`.

  llama-server -m model.gguf $(scan-backends plan model.gguf --format args)

Exit: 0 it fits, 1 it does not (how much it needs, what the servers have, who was left out
and why), 2 usage error, 3 a bad model file or environment error, 130 interrupted.
`;

/** The flags of this command: resolve's, and the plan's own. */
export const PLAN_FLAGS = {
  ...RESOLVE_FLAGS,
  ctx: { type: 'string' },
  'cache-type': { type: 'string' },
  reserve: { type: 'string' },
  format: formatFlag(['table', 'json', 'args']),
} as const;

function layersText(d: PlanResult['devices'][number]): string {
  const { first, end, output } = d.layers;
  const layers = end > first ? (end - first === 1 ? `${first}` : `${first}-${end - 1}`) : '';
  return output ? (layers ? `${layers}+output` : 'output') : layers || 'none';
}

function renderPlan(plan: PlanResult): string {
  const m = plan.model;
  const name = m.name === undefined ? '' : `${peerText(m.name)} `;
  const lines = [
    `Model: ${terminalSafe(`${name}(${peerText(m.architecture)})`)}, ${m.layerBytes.length} layers, ` +
      `weights ${formatBytes(m.totalWeightBytes - m.hostBytes)} on the devices and ${formatBytes(m.hostBytes)} on the host, ` +
      `KV cache ${m.cacheType} at ctx ${m.ctx}`,
  ];
  for (const a of m.assumptions) lines.push(`  assumed: ${terminalSafe(peerText(a, 256))}`);
  if (plan.fits) {
    const rows = plan.devices.map((d, i) => [
      `RPC${i}`,
      d.server,
      String(d.device),
      layersText(d),
      formatBytes(d.weightBytes),
      formatBytes(d.kvBytes),
      formatBytes(d.reserveBytes),
      formatBytes(d.expectedBytes),
      formatBytes(d.freeBytes),
      formatBytes(d.headroomBytes),
    ]);
    const header = ['DEVICE', 'SERVER', 'DEV', 'LAYERS', 'WEIGHTS', 'KV', 'RESERVE', 'EXPECTED', 'FREE', 'HEADROOM'];
    lines.push(alignTable(header, rows).trimEnd(), `llama-server arguments: ${plan.args.join(' ')}`);
  } else {
    lines.push(`Does not fit: ${plan.reason ?? ''}`);
  }
  if (plan.leftOut.length > 0) {
    lines.push('Left out:', ...plan.leftOut.map((l) => `  ${terminalSafe(l.server)}  ${terminalSafe(l.reason)}`));
  }
  return `${lines.join('\n')}\n`;
}

/** The plan's options from its flags. */
function planOptions(values: { ctx?: string; 'cache-type'?: string; reserve?: string }): PlanOptions {
  const cacheType = values['cache-type'];
  if (cacheType !== undefined && !(CACHE_TYPES as readonly string[]).includes(cacheType)) {
    throw new UsageError(`--cache-type: expected ${CACHE_TYPES.join(', ')}; got "${cacheType}"`);
  }
  return {
    ctx: parseInteger('--ctx', values.ctx, 'ctx'),
    cacheType: cacheType as PlanOptions['cacheType'],
    reserveBytes: values.reserve === undefined ? undefined : parseSize('--reserve', values.reserve),
  };
}

export async function runPlanCommand(argv: string[], signal: AbortSignal): Promise<number> {
  const { values, positionals } = parseFlags({ args: argv, allowPositionals: true, options: { ...PLAN_FLAGS } });
  if (values.help) {
    process.stdout.write(PLAN_USAGE);
    return 0;
  }
  if (positionals.length !== 1) {
    throw new UsageError(`expected one model file (MODEL.gguf), got ${positionals.length}`);
  }
  const format = parseFormat(values.format, PLAN_FLAGS.format.choices, 'json');
  const {
    from,
    'token-file': tokenFile,
    ctx,
    'cache-type': cacheType,
    reserve,
    explain: explaining,
    format: _format,
    help: _help,
    ...resolveFlags
  } = values;
  const options = planOptions({ ctx, 'cache-type': cacheType, reserve });
  const resolveOptions = resolveOptionsFromFlags(resolveFlags, signal);
  let plan: PlanResult;
  try {
    plan = await planModel(
      positionals[0] as string,
      async () => {
        const resolution =
          from === undefined ? await resolveBackends(resolveOptions) : await fromServe(from, tokenFile, signal);
        if (explaining) process.stderr.write(explain(resolution));
        return resolution;
      },
      options,
    );
  } catch (error) {
    if (!signal.aborted) throw error;
    process.stderr.write('scan-backends: interrupted\n');
    return EXIT.interrupted;
  }
  if (format === 'json') process.stdout.write(`${JSON.stringify(plan)}\n`);
  else if (format === 'args') {
    if (plan.fits) process.stdout.write(`${plan.args.join(' ')}\n`);
    else process.stderr.write(renderPlan(plan));
  } else process.stdout.write(renderPlan(plan));
  return plan.fits ? EXIT.found : EXIT.none;
}
