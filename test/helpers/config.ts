// A config file (rpc_backends.conf) in a directory of its own, one entry a line; a serve
// token file the same way.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function configFile(lines: string[]): string {
  const file = join(mkdtempSync(join(tmpdir(), 'sb-config-')), 'rpc_backends.conf');
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

/** A --token-file holding `token` and a line end, as an operator writes one. */
export function tokenFile(token: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'sb-token-')), 'token');
  writeFileSync(file, `${token}\n`);
  return file;
}
