// A config file (rpc_backends.conf) in a directory of its own, one entry a line.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function configFile(lines: string[]): string {
  const file = join(mkdtempSync(join(tmpdir(), 'sb-config-')), 'rpc_backends.conf');
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}
