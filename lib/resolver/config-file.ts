// Source "config": rpc_backends.conf, one host[:port] a line, # comments and blank lines.
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

import { InvalidTargetError } from '../errors.js';
import { parseHostPort } from '../host-port.js';
import type { Candidate, Dropped } from './types.js';

export const CONFIG_NAME = 'rpc_backends.conf';

/** Where the config file is looked for, first match wins. */
export function configSearchPath(explicit: string | undefined, env: NodeJS.ProcessEnv = process.env): string[] {
  if (explicit) return [explicit];
  const xdg = env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return [
    ...(env.SCAN_BACKENDS_CONFIG ? [env.SCAN_BACKENDS_CONFIG] : []),
    join(process.cwd(), CONFIG_NAME),
    join(xdg, 'scan-backends', CONFIG_NAME),
    join('/etc/scan-backends', CONFIG_NAME),
  ];
}

export interface ParsedConfig {
  candidates: Candidate[];
  dropped: Dropped[];
  /** "file:line: bad token …" for each line that is no host[:port]. */
  warnings: string[];
}

/** Parses the text of a config file. With `strict`, a bad line throws instead of warning. */
export function parseConfig(text: string, file: string, strict = false): ParsedConfig {
  const parsed: ParsedConfig = { candidates: [], dropped: [], warnings: [] };
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') return;
    const where = `${file}:${i + 1}`;
    const entry = parseHostPort(line);
    if (typeof entry === 'string') {
      const message = `${where}: bad token "${line}" (${entry})`;
      if (strict) throw new InvalidTargetError(line, message);
      parsed.warnings.push(message);
    } else if (entry.port === 0) {
      parsed.dropped.push({ ...entry, reason: `${where}: port 0: a placeholder, not a backend` });
    } else {
      parsed.candidates.push({ ...entry, source: 'config' });
    }
  });
  return parsed;
}

/** Reads the first config file found; null when there is none. An explicit path must exist. */
export async function configCandidates(
  explicit: string | undefined,
  strict: boolean,
): Promise<(ParsedConfig & { file: string }) | null> {
  for (const file of configSearchPath(explicit)) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (!explicit && (code === 'ENOENT' || code === 'ENOTDIR')) continue;
      throw new Error(`${file}: ${code ?? (error as Error).message}`, { cause: error });
    }
    return { ...parseConfig(text, file, strict), file };
  }
  return null;
}
