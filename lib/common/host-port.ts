// "host:port" entries as coordinators, config files and the probe command write them.
import { parseAddress } from './addresses.js';
import { GGML_RPC_PORT } from './options.js';

export interface HostPort {
  host: string;
  port: number;
}

/**
 * Parses "host:port", "[v6]:port", "host" or a bare IPv6 literal. A missing port is
 * `defaults.port` (50052, llama.cpp's RPC port, unless the caller's address is another kind's);
 * ":port" alone takes `defaults.host` where the caller has one. Returns the reason when the
 * text is not one. Port 0 parses: callers decide whether it is a placeholder.
 */
export function parseHostPort(text: string, defaults: { host?: string; port?: number } = {}): HostPort | string {
  const bracketed = /^\[([^\]]+)\](?::(\d*))?$/.exec(text);
  let host: string;
  let portText: string | undefined;
  if (bracketed) {
    host = bracketed[1] as string;
    portText = bracketed[2];
  } else if (parseAddress(text)?.family === 6) {
    host = text;
  } else {
    const colon = text.lastIndexOf(':');
    host = colon < 0 ? text : text.slice(0, colon);
    portText = colon < 0 ? undefined : text.slice(colon + 1);
  }
  if (host === '' && portText !== undefined && defaults.host !== undefined) host = defaults.host;
  if (host === '' || /[\s/,]/.test(host)) return 'not a host[:port]';
  if (portText === undefined) return { host, port: defaults.port ?? GGML_RPC_PORT };
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) return 'port must be 1..65535';
  return { host, port: Number(portText) };
}

/** host:port with IPv6 in brackets, as llama-server's --rpc takes it. */
export function formatHostPort({ host, port }: HostPort): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
