// The guards every target passes, from any source: public space needs an explicit opt-in,
// link-local and cloud-metadata addresses another.
import type { AddressFamily } from '../../common/addresses.js';
import { block, type AddressRange } from './ranges.js';

/**
 * IPv4 blocks and their IPv4-mapped IPv6 twins (::ffff:a.b.c.d, which an IPv6 socket connects
 * to over IPv4): a guard that knew only the dotted form would let the mapped one through.
 */
function withMapped(cidrs: readonly string[]): string[] {
  return cidrs.flatMap((cidr) => {
    const [base, prefix] = cidr.split('/') as [string, string];
    return base.includes(':') ? [cidr] : [cidr, `::ffff:${base}/${96 + Number(prefix)}`];
  });
}

/** Non-public space: private, loopback, link-local, CGNAT (IPv4); loopback, ULA, link-local (IPv6). */
const NON_PUBLIC_BLOCKS: readonly AddressRange[] = withMapped([
  '10.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '100.64.0.0/10',
  '::1/128',
  'fc00::/7',
  'fe80::/10',
]).map(block);

/**
 * Link-local space and the cloud-metadata addresses in it (169.254.169.254; AWS's IPv6
 * fd00:ec2::254): never a backend candidate without an explicit opt-in, from any source.
 */
const LINK_LOCAL_BLOCKS: readonly AddressRange[] = withMapped(['169.254.0.0/16', 'fe80::/10', 'fd00:ec2::254/128']).map(
  block,
);

/** Whether any address of the range is link-local or a cloud-metadata address. */
export function touchesLinkLocal(range: { family: AddressFamily; first: bigint; last: bigint }): boolean {
  return LINK_LOCAL_BLOCKS.some((b) => b.family === range.family && b.first <= range.last && range.first <= b.last);
}

export const LINK_LOCAL_REFUSAL =
  'a link-local or cloud-metadata address: never connected to unless allowed (--allow-link-local, allowLinkLocal)';

/**
 * The unspecified addresses (0.0.0.0/8, ::, ::ffff:0.0.0.0/104): connecting to one reaches
 * this host, so a peer naming one would point us at our own services.
 */
const UNSPECIFIED_BLOCKS: readonly AddressRange[] = withMapped(['0.0.0.0/8', '::/128']).map(block);

/** Whether the address is an unspecified one: never a candidate, from any source, whatever is allowed. */
export function isUnspecified(address: { family: AddressFamily; value: bigint }): boolean {
  return UNSPECIFIED_BLOCKS.some(
    (b) => b.family === address.family && b.first <= address.value && address.value <= b.last,
  );
}

export const UNSPECIFIED_REFUSAL = 'an unspecified address (0.0.0.0/8, ::): it reaches this host; never connected to';

export function isNonPublicRange(range: { family: AddressFamily; first: bigint; last: bigint }): boolean {
  return NON_PUBLIC_BLOCKS.some(
    (block) => block.family === range.family && block.first <= range.first && range.last <= block.last,
  );
}
