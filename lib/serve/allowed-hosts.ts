// Which Host a request may name, against DNS rebinding (issue 18): a page on another origin
// whose name its owner points at this machine sends that name in Host, and the browser lets
// it read the answer. So a name is answered only when it is loopback's, the --listen host's or
// one the operator allowed (--allow-host). An address in Host cannot be rebound (the page's
// origin is the address itself): one the server listens on is answered, every one behind
// 0.0.0.0 or ::. The port is not checked: rebinding needs a name, and a proxy may change it.
import { formatAddress, isLoopbackAddress, parseAddress } from '../common/addresses.js';
import { parseHostPort } from '../common/host-port.js';

const HOST_NAME = /^[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*$/;

/**
 * A host as Host headers and --allow-host compare: a name in lower case without its final dot,
 * an address in one spelling (brackets off); undefined when it is neither.
 */
export function normalizeHost(text: string): string | undefined {
  const bare = text.replace(/^\[(.*)\]$/, '$1');
  const address = parseAddress(bare);
  if (address) return formatAddress(address);
  const name = bare.toLowerCase().replace(/\.$/, '');
  return HOST_NAME.test(name) && name.length <= 253 ? name : undefined;
}

/** The check for one server: true when a request's authority (Host, or an absolute URL's) may be answered. */
export function hostCheck(
  listenHost: string,
  allowHosts: readonly string[],
): (authority: string | undefined) => boolean {
  const listen = normalizeHost(listenHost);
  const everyAddress = listen === '0.0.0.0' || listen === '::';
  const allowed = new Set([listen, ...allowHosts.map(normalizeHost)]);
  return (authority) => {
    if (authority === undefined) return false;
    const parsed = parseHostPort(authority);
    if (typeof parsed === 'string') return false;
    const host = normalizeHost(parsed.host);
    if (host === undefined) return false;
    return allowed.has(host) || isLoopbackAddress(host) || (everyAddress && parseAddress(host) !== null);
  };
}
