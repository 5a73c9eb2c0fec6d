// The CLI's pure parts: --listen's defaults, the messages a mistyped command line gets.
import { describe, expect, it } from 'vitest';

import { parseServeFlags } from '../../lib/cli/serve-command.js';
import { parseHostPort } from '../../lib/common/host-port.js';

describe('serve --listen', () => {
  it.each([
    ['127.0.0.1', '127.0.0.1', 8765],
    ['localhost', 'localhost', 8765],
    [':8765', '127.0.0.1', 8765],
    [':9000', '127.0.0.1', 9000],
    ['127.0.0.7:0', '127.0.0.7', 0],
    ['[::1]', '::1', 8765],
    ['::1', '::1', 8765],
  ])('%s listens on %s port %i (a host alone never takes ggml-rpc 50052)', (listen, host, port) => {
    expect(parseServeFlags({ listen })).toMatchObject({ host, port });
  });

  it('without --listen it is 127.0.0.1:8765', () => {
    expect(parseServeFlags({})).toMatchObject({ host: '127.0.0.1', port: 8765 });
  });

  it.each(['', ':', '127.0.0.1:70000', 'a b:80'])('refuses %j naming the forms it takes', (listen) => {
    expect(() => parseServeFlags({ listen })).toThrow(/--listen: expected HOST:PORT, HOST or :PORT/);
  });

  it('the address lists coordinators write still default to 50052, and ":port" alone is no host there', () => {
    expect(parseHostPort('10.0.0.7')).toEqual({ host: '10.0.0.7', port: 50052 });
    expect(parseHostPort(':50052')).toBe('not a host[:port]');
  });
});
