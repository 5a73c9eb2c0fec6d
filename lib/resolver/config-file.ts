// Source "config": rpc_backends.conf, one host[:port] a line, # comments and blank lines.
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';

import { InvalidTargetError } from '../common/errors.js';
import { parseHostPort } from '../common/host-port.js';
import { peerText } from '../common/peer-text.js';
import { configSearchPath } from '../common/options.js';
import { irregularFile } from '../common/regular-file.js';
import { parseVersion } from '../common/version.js';
import type { Candidate, Dropped } from './types.js';

/** A config file is a short list; anything larger is not one (and /dev/zero must not fill the heap). */
export const MAX_CONFIG_BYTES = 1024 * 1024;
/** Bad lines reported one by one before the rest are counted. */
const MAX_WARNINGS = 50;

export interface ParsedConfig {
  candidates: Candidate[];
  dropped: Dropped[];
  /** "file:line: bad token …" for each line that is no host[:port]. */
  warnings: string[];
  /** From a line `rpc-version X.Y.Z`: the coordinator's protocol, when the file names it. */
  rpcVersion?: string;
}

/** Parses the text of a config file. With `strict`, a bad line throws instead of warning. */
export function parseConfig(text: string, file: string, strict = false): ParsedConfig {
  const parsed: ParsedConfig = { candidates: [], dropped: [], warnings: [] };
  let bad = 0;
  const warn = (line: string, message: string) => {
    if (strict) throw new InvalidTargetError(line, message, { file });
    if (++bad <= MAX_WARNINGS) parsed.warnings.push(message);
  };
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') return;
    const where = `${file}:${i + 1}`;
    const shown = peerText(line, 80);
    const directive = /^rpc-version\s+(\S+)$/.exec(line);
    if (directive) {
      const version = directive[1] as string;
      if (parseVersion(version)) parsed.rpcVersion = version;
      else warn(line, `${where}: bad token "${shown}" (rpc-version takes major.minor.patch)`);
      return;
    }
    const entry = parseHostPort(line);
    if (typeof entry === 'string') {
      warn(line, `${where}: bad token "${shown}" (${entry})`);
    } else if (entry.port === 0) {
      parsed.dropped.push({ ...entry, reason: `${where}: port 0: a placeholder, not a backend` });
    } else {
      parsed.candidates.push({ ...entry, source: 'config' });
    }
  });
  if (bad > MAX_WARNINGS) parsed.warnings.push(`${file}: ${bad - MAX_WARNINGS} more bad lines`);
  return parsed;
}

/**
 * Reads a config file: a regular file of at most MAX_CONFIG_BYTES of text. Opened without
 * blocking, so a FIFO with no writer is refused at once instead of hanging the resolver.
 */
export async function readConfigText(file: string): Promise<string> {
  const handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const stat = await handle.stat();
    const irregular = irregularFile(stat);
    if (irregular) throw new Error(`${file}: ${irregular}`);
    if (stat.size > MAX_CONFIG_BYTES) {
      throw new Error(`${file}: ${stat.size} bytes; a config file holds at most ${MAX_CONFIG_BYTES}`);
    }
    const buffer = Buffer.alloc(MAX_CONFIG_BYTES + 1);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    if (bytesRead > MAX_CONFIG_BYTES) throw new Error(`${file}: grew past ${MAX_CONFIG_BYTES} bytes while read`);
    const bytes = buffer.subarray(0, bytesRead);
    if (bytes.includes(0)) throw new Error(`${file}: binary data (a NUL byte), not a config file`);
    return bytes.toString('utf8');
  } finally {
    await handle.close();
  }
}

export type LoadedConfig = ParsedConfig & { file: string };

/** Reads the first config file found; null when there is none. An explicit path must exist. */
export async function configCandidates(explicit: string | undefined, strict: boolean): Promise<LoadedConfig | null> {
  for (const file of configSearchPath(explicit)) {
    let text: string;
    try {
      text = await readConfigText(file);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (!explicit && (code === 'ENOENT' || code === 'ENOTDIR')) continue;
      if (code === 'ENOENT') throw new Error(`${file}: no such file`, { cause: error });
      throw new Error(code ? `${file}: ${code}` : (error as Error).message, { cause: error });
    }
    return { ...parseConfig(text, file, strict), file };
  }
  return null;
}
