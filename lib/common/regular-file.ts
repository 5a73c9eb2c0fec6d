// Whether a path opened for its contents is a file to read: a config file, a token, a key.
import type { Stats } from 'node:fs';

/** Why a file opened for its contents is none to read (a FIFO would block, /dev/zero never ends). */
export function irregularFile(stat: Stats): string | undefined {
  if (stat.isFile()) return undefined;
  const kind = stat.isFIFO()
    ? 'a FIFO'
    : stat.isCharacterDevice()
      ? 'a character device'
      : stat.isDirectory()
        ? 'a directory'
        : 'not a file';
  return `${kind}, not a regular file`;
}
