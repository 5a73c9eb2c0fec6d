// Command-line flags through node's parseArgs, with errors in our words: an unknown flag
// names the nearest known one, a missing value names its flag, and an argument that starts
// with "-" but is no flag is named as the target it probably is. Also the value parsers the
// commands share (whole numbers, durations, --format, --engine, the timing and probe flags,
// secret files).
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';

import {
  checkIntegerOption,
  ENGINES,
  environmentToken,
  integerRange,
  PROBE_NAMES,
  rpcVersionOption,
  type EngineChoice,
  type IntegerOption,
  type ProbeName,
  type ScanOptions,
  type Timing,
  TIMINGS,
} from '../common/options.js';
import { irregularFile } from '../common/regular-file.js';
import { UsageError } from './exit-codes.js';

/**
 * What a flag's value is, beside what parseArgs reads: one of some words (--format, --engine),
 * a comma list of words (--sources, --service), a file (--config), or a hint for anything
 * else. Shell completion offers the words and files; a missing value's message names the kind.
 */
export interface FlagSpec {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  readonly multiple?: boolean;
  readonly default?: boolean;
  readonly choices?: readonly string[];
  readonly list?: readonly string[];
  readonly file?: boolean;
  readonly hint?: string;
}
export type FlagTable = Readonly<Record<string, FlagSpec>>;

/** --format's words; the first is the one a terminal gets (see parseFormat). */
export function formatFlag<const T extends readonly string[]>(choices: T) {
  return { type: 'string', choices } as const;
}
export const ENGINE_FLAG = { type: 'string', choices: ENGINES } as const;
export const FILE_FLAG = { type: 'string', file: true } as const;
export const DURATION_FLAG = { type: 'string', hint: 'a duration such as 500ms, 5s, 10m or 1h' } as const;
export const PORTS_FLAG = {
  type: 'string',
  short: 'p',
  multiple: true,
  hint: 'a port list like 50052 or 8000-8100',
} as const;

/** What a flag wants, as a message or a help line says it: "one of table, json". */
export function valueKind(spec: FlagSpec | undefined): string | undefined {
  if (spec?.choices) return `one of ${spec.choices.join(', ')}`;
  if (spec?.list) return `a comma list of ${spec.list.join(', ')}`;
  if (spec?.file) return 'a file';
  return spec?.hint;
}

/** Edit distance, for "did you mean": flags are short, so the quadratic table is nothing. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0] as number;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j] as number;
      row[j] = Math.min(above + 1, (row[j - 1] as number) + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length] as number;
}

/** The known flag or command nearest to `name` ("--timout" → "--timeout", "scna" → "scan"), if any is close. */
export function nearestName(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const flag of known) {
    const d = flag.startsWith(name) ? 1 : distance(name, flag);
    if (d < bestDistance) [best, bestDistance] = [flag, d];
  }
  return bestDistance <= Math.max(2, Math.floor(name.length / 4)) ? best : undefined;
}

/**
 * "--timeout -5": a negative number after a flag that takes a value is that value (parseArgs
 * would call it ambiguous), so the flag's own check can say what range it wants.
 */
function joinNegativeValues(config: ParseArgsConfig): string[] | undefined {
  const args = config.args;
  if (!args) return args;
  /** The long name of a flag that takes a value, or undefined. */
  const valueFlag = (arg: string) => {
    const name = arg.startsWith('--')
      ? arg.slice(2)
      : Object.entries(config.options ?? {}).find(([, o]) => `-${o.short}` === arg)?.[0];
    return name !== undefined && config.options?.[name]?.type === 'string' ? name : undefined;
  };
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    const next = args[i + 1];
    if (arg === '--') {
      out.push(...args.slice(i));
      break;
    }
    const name = next !== undefined && /^-\d/.test(next) ? valueFlag(arg) : undefined;
    if (name !== undefined) {
      out.push(`--${name}=${next}`);
      i++;
    } else out.push(arg);
  }
  return out;
}

/**
 * The argument as the user typed it that holds `given`, the flag parseArgs names: parseArgs
 * splits "-127.0.0.1" into the short flags -1, -2, -7… and names only "-1". Walks the
 * arguments as parseArgs does, skipping the values of flags that take one.
 */
function typedArgument(args: readonly string[], given: string, config: ParseArgsConfig): string {
  const options = Object.entries(config.options ?? {});
  const takesValue = (short: string) => options.some(([, o]) => o.short === short && o.type === 'string');
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--') break;
    if (arg === given || arg.startsWith(`${given}=`)) return arg;
    if (arg.startsWith('--')) {
      if (!arg.includes('=') && config.options?.[arg.slice(2)]?.type === 'string') i++;
      continue;
    }
    if (!arg.startsWith('-') || arg.length < 2) continue; // a positional
    for (let j = 1; j < arg.length; j++) {
      const short = arg[j] as string;
      if (`-${short}` === given) return arg;
      if (takesValue(short)) {
        if (j === arg.length - 1) i++; // "-p 80": the value is the next argument
        break; // "-p80": the rest is the value
      }
    }
  }
  return given;
}

/** parseArgs (strict, its default) with its errors turned into usage errors that name the flag. */
export function parseFlags<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  const args = joinNegativeValues(config);
  try {
    return parseArgs({ ...config, args } as T); // strict by default
  } catch (error) {
    const code = (error as { code?: string }).code ?? '';
    const message = (error as Error).message;
    const given = /'(-{1,2}[^'\s]*)/.exec(message)?.[1] ?? '';
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const typed = args ? typedArgument(args, given, config) : given;
      if (/^-[0-9.:[]/.test(typed)) {
        throw new UsageError(`unknown option "${typed}": a target cannot start with "-"`);
      }
      const known = Object.entries(config.options ?? {}).flatMap(([name, o]) => [
        `--${name}`,
        ...(o.short ? [`-${o.short}`] : []),
      ]);
      const flag = typed.replace(/=.*$/, '');
      const near = nearestName(flag, known);
      throw new UsageError(`unknown option ${flag}${near ? ` (did you mean ${near}?)` : ''}`);
    }
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      // "Option '-p, --ports <value>' argument missing": named as typed, with what it takes.
      const name = /--([^\s'<]+)/.exec(message)?.[1] ?? '';
      const spec = config.options?.[name] as FlagSpec | undefined;
      const forms = [`--${name}`, ...(spec?.short ? [`-${spec.short}`] : [])];
      const flag = args?.findLast((arg) => forms.includes(arg)) ?? `--${name}`;
      if (!message.includes('argument missing')) throw new UsageError(`${flag}: ${message}`);
      const kind = valueKind(spec);
      throw new UsageError(`${flag} needs a value${kind ? ` (${kind})` : ''}`);
    }
    if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
      throw new UsageError(
        `unexpected argument ${/'([^']*)'/.exec(message)?.[1] ?? ''}: this command takes no targets`,
      );
    }
    throw error;
  }
}

/**
 * A whole-number flag: digits, then the option's own range check (common/options.ts), with
 * the flag as the name in the message.
 */
export function parseInteger(flag: string, text: string | undefined, option: IntegerOption): number | undefined {
  if (text === undefined) return undefined;
  if (!/^-?[0-9]+$/.test(text)) throw new UsageError(`${flag}: expected a whole number, got "${text}"`);
  const value = Number(text);
  checkIntegerOption(option, value, flag);
  return value;
}

/**
 * --format, with the one rule for its default: a terminal gets the first of `allowed` (the
 * table or text people read); a pipe gets the command's machine format, NDJSON where results
 * stream as they come (scan, watch, demo) and JSON where the command answers once (probe,
 * resolve, plan, doctor).
 */
export function parseFormat(text: string | undefined, allowed: readonly string[], machine: 'json' | 'ndjson'): string {
  const format = text ?? (process.stdout.isTTY ? (allowed[0] as string) : machine);
  if (!allowed.includes(format)) throw new UsageError(`--format: expected ${allowed.join(', ')}; got "${format}"`);
  return format;
}

export function parseEngine(text: string | undefined): EngineChoice | undefined {
  if (text !== undefined && !ENGINE_FLAG.choices.includes(text as EngineChoice)) {
    throw new UsageError(`--engine: expected auto, native or js; got "${text}"`);
  }
  return text as EngineChoice | undefined;
}

export const PROBE_FLAGS = {
  service: { type: 'string', list: ['auto', ...PROBE_NAMES] },
  'grpc-service': { type: 'string' },
  'probe-timeout': { type: 'string' },
  'rpc-version': { type: 'string', hint: 'a protocol version such as 3.0.0' },
} as const;

/** The probe options shared by `scan --probe` and `probe`. */
export function parseProbeFlags(values: {
  service?: string;
  'grpc-service'?: string;
  'probe-timeout'?: string;
  'rpc-version'?: string;
}): Pick<ScanOptions, 'probe' | 'grpcService' | 'probeTimeoutMs' | 'rpcVersion'> {
  const service = values.service ?? 'auto';
  const names = service === 'auto' ? null : service.split(',');
  if (names && !names.every((n) => PROBE_NAMES.includes(n as ProbeName))) {
    throw new UsageError(`--service: expected auto or a list of ${PROBE_NAMES.join(', ')}; got "${service}"`);
  }
  const rpcVersion = values['rpc-version'];
  if (rpcVersion !== undefined) {
    try {
      rpcVersionOption({ rpcVersion }); // the library's own check; the message names the flag
    } catch {
      throw new UsageError(`--rpc-version: expected major.minor.patch, got "${rpcVersion}"`);
    }
  }
  return {
    probe: names ? (names as ProbeName[]) : 'auto',
    grpcService: values['grpc-service'],
    probeTimeoutMs: parseInteger('--probe-timeout', values['probe-timeout'], 'probeTimeoutMs'),
    rpcVersion,
  };
}

/** How long each connect waits (scan, resolve, watch): the options' words in common/options.ts. */
export const TIMING_FLAGS = {
  timing: { type: 'string', choices: TIMINGS },
  timeout: { type: 'string' },
  'min-rtt-timeout': { type: 'string' },
  'max-rtt-timeout': { type: 'string' },
} as const;

export function parseTimingFlags(values: {
  timing?: string;
  timeout?: string;
  'min-rtt-timeout'?: string;
  'max-rtt-timeout'?: string;
}): Pick<ScanOptions, 'timing' | 'timeoutMs' | 'minRttTimeoutMs' | 'maxRttTimeoutMs'> {
  const timing = values.timing;
  if (timing !== undefined && !(TIMINGS as readonly string[]).includes(timing)) {
    throw new UsageError(`--timing: expected ${TIMINGS.join(' or ')}; got "${timing}"`);
  }
  return {
    timing: timing as Timing | undefined,
    timeoutMs: parseInteger('--timeout', values.timeout, 'timeoutMs'),
    minRttTimeoutMs: parseInteger('--min-rtt-timeout', values['min-rtt-timeout'], 'minRttTimeoutMs'),
    maxRttTimeoutMs: parseInteger('--max-rtt-timeout', values['max-rtt-timeout'], 'maxRttTimeoutMs'),
  };
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * A duration flag: "500ms", "5s", "10m", "1h", "2d"; a bare number is milliseconds, as
 * --timeout takes. The result is checked against the option's range, named by the flag.
 */
export function parseDuration(flag: string, text: string | undefined, option: IntegerOption): number | undefined {
  if (text === undefined) return undefined;
  const match = /^([0-9]+)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!match) throw new UsageError(`${flag}: expected a duration such as 500ms, 5s, 10m or 1h; got "${text}"`);
  const value = Number(match[1]) * (UNIT_MS[match[2] ?? 'ms'] as number);
  const [min, max] = integerRange(option);
  if (!(value >= min && value <= max)) {
    throw new UsageError(`${flag}: must be ${formatDuration(min)}..${formatDuration(max)}, got ${text}`);
  }
  return value;
}

/** Milliseconds in the largest unit that says them whole: 100ms, 5s, 1d. */
function formatDuration(ms: number): string {
  const [unit, size] = Object.entries(UNIT_MS)
    .reverse()
    .find(([, size]) => ms % size === 0 && ms > 0) ?? ['ms', 1];
  return `${ms / size}${unit}`;
}

/** A secret file's bytes (a token, a key): at most 4 KiB, a regular file, never read past that. */
export const MAX_SECRET_BYTES = 4096;

export function readSecretFile(flag: string, file: string): Buffer {
  let fd: number | undefined;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
    const irregular = irregularFile(fstatSync(fd));
    if (irregular) throw new UsageError(`${flag}: ${file}: ${irregular}`);
    const buffer = Buffer.alloc(MAX_SECRET_BYTES + 1);
    const bytesRead = readSync(fd, buffer, 0, buffer.length, 0);
    if (bytesRead > MAX_SECRET_BYTES) throw new UsageError(`${flag}: ${file} is over ${MAX_SECRET_BYTES} bytes`);
    return buffer.subarray(0, bytesRead);
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`${flag}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message} (${file})`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * The token a serve instance wants: the contents of --token-file (trimmed; an unreadable,
 * empty or oversized file is a usage error naming it), else $SCAN_BACKENDS_TOKEN.
 */
export function tokenOption(file: string | undefined): string | undefined {
  if (file === undefined) return environmentToken();
  const token = readSecretFile('--token-file', file).toString('utf8').trim();
  if (token === '') throw new UsageError(`--token-file: ${file} is empty`);
  return token;
}
