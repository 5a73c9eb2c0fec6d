// The JSON Schemas shipped in schemas/, compiled once: `valid(name, value)` is 'valid' or
// what is wrong.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Ajv } from 'ajv';

const SCHEMAS = fileURLToPath(new URL('../../schemas/', import.meta.url));
export const ajv = new Ajv({ allErrors: true, strict: true });
for (const name of [
  'scan-result',
  'scan-report',
  'resolution',
  'watch-event',
  'serve-backends',
  'serve-history',
  'plan',
]) {
  ajv.addSchema(JSON.parse(readFileSync(join(SCHEMAS, `${name}.schema.json`), 'utf8')), `${name}.schema.json`);
}

export function valid(schema: string, value: unknown): string {
  const check = ajv.getSchema(`${schema}.schema.json`);
  if (!check) throw new Error(`no schema ${schema}`);
  return check(value) ? 'valid' : ajv.errorsText(check.errors);
}
