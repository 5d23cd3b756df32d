/**
 * The webhook relay's destination guard: which addresses are not public, and the check an
 * endpoint URL passes at registration. Delivery checks the address it actually connects to
 * (see `createWebhookFetch`), so a name that later resolves elsewhere cannot rebind around this.
 */
import { promises as dnsPromises } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { StorageConfigError, WebhookDestinationError } from '../errors.js';

/** One table row: the reason and the ranges it covers. Rows are checked in order. */
type Row = readonly [reason: string, ranges: ReadonlyArray<readonly [network: string, prefix: number]>];

// IANA IPv4 Special-Purpose Address Registry, minus the few entries it marks globally reachable
// (AS112, AMT). More specific rows come first so that 0.0.0.0 is "unspecified", not "reserved".
const IPV4: readonly Row[] = [
  ['unspecified', [['0.0.0.0', 32]]],
  ['broadcast', [['255.255.255.255', 32]]],
  ['loopback', [['127.0.0.0', 8]]],
  ['private', [['10.0.0.0', 8], ['172.16.0.0', 12], ['192.168.0.0', 16]]],
  ['carrier-grade NAT', [['100.64.0.0', 10]]],
  ['link-local', [['169.254.0.0', 16]]],
  ['documentation', [['192.0.2.0', 24], ['198.51.100.0', 24], ['203.0.113.0', 24]]],
  ['benchmarking', [['198.18.0.0', 15]]],
  ['multicast', [['224.0.0.0', 4]]],
  // "This network" (Linux connects 0.x to the local host), IETF protocol assignments, the
  // deprecated 6to4 relay anycast, and the future-use block.
  ['reserved', [['0.0.0.0', 8], ['192.0.0.0', 24], ['192.88.99.0', 24], ['240.0.0.0', 4]]],
];

// IPv6 outside global unicast (2000::/3) is refused as "reserved" unless a row names it better.
const IPV6: readonly Row[] = [
  ['unspecified', [['::', 128]]],
  ['loopback', [['::1', 128]]],
  ['unique local', [['fc00::', 7]]],
  ['link-local', [['fe80::', 10]]],
  ['site-local', [['fec0::', 10]]],
  ['multicast', [['ff00::', 8]]],
  ['documentation', [['2001:db8::', 32], ['3fff::', 20]]],
  ['benchmarking', [['2001:2::', 48]]],
  // ORCHID (deprecated).
  ['reserved', [['2001:10::', 28]]],
];

function compile(rows: readonly Row[], family: 'ipv4' | 'ipv6'): Array<readonly [string, BlockList]> {
  return rows.map(([reason, ranges]) => {
    const list = new BlockList();
    for (const [network, prefix] of ranges) list.addSubnet(network, prefix, family);
    return [reason, list] as const;
  });
}

// One BlockList per family: Node matches an IPv6 rule against an IPv4 check (as IPv4-mapped),
// so mixing them would misclassify. IPv4-mapped IPv6 is unwrapped explicitly below instead.
const V4 = compile(IPV4, 'ipv4');
const V6 = compile(IPV6, 'ipv6');
const GLOBAL_UNICAST = compile([['global unicast', [['2000::', 3]]]], 'ipv6')[0]![1];

function v4Reason(address: string): string | undefined {
  for (const [reason, list] of V4) if (list.check(address, 'ipv4')) return reason;
  return undefined;
}

/** The eight 16-bit groups of a valid IPv6 address (zone id already removed). */
function ipv6Groups(address: string): number[] {
  let text = address;
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const [a = 0, b = 0, c = 0, d = 0] = tail.split('.').map(Number);
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', rest] = text.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const restGroups = rest === undefined || rest === '' ? [] : rest.split(':');
  const zeros = rest === undefined ? [] : new Array<string>(8 - headGroups.length - restGroups.length).fill('0');
  return [...headGroups, ...zeros, ...restGroups].map((group) => Number.parseInt(group, 16));
}

const v4From = (high: number, low: number): string => `${high >>> 8}.${high & 0xff}.${low >>> 8}.${low & 0xff}`;

/**
 * Why an IP address is not a public destination, or `undefined` when it is public.
 *
 * IPv4: `loopback`, `private`, `link-local`, `carrier-grade NAT`, `unspecified`, `broadcast`,
 * `multicast`, `documentation`, `benchmarking`, `reserved`. IPv6: `loopback`, `unspecified`,
 * `unique local`, `link-local`, `site-local`, `multicast`, `documentation`, `benchmarking`, and
 * `reserved` for anything outside global unicast (2000::/3). An IPv6 address that embeds an IPv4
 * one is judged by it: `IPv4-mapped loopback` (::ffff:127.0.0.1, also written ::ffff:7f00:1),
 * `NAT64 private` (64:ff9b::/96), `6to4 …` (2002::/16), `Teredo …` (2001::/32, its client).
 * A zone id (`fe80::1%eth0`) is ignored. Anything that is not an IP literal is refused as
 * `not an IP address`, so the guard fails closed.
 *
 * @example
 * ```ts
 * nonPublicReason('10.1.2.3');          // 'private'
 * nonPublicReason('::ffff:7f00:1');     // 'IPv4-mapped loopback'
 * nonPublicReason('2606:4700:4700::1111'); // undefined: public
 * ```
 */
export function nonPublicReason(address: string): string | undefined {
  const bare = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  const zone = bare.indexOf('%');
  const ip = zone === -1 ? bare : bare.slice(0, zone);
  const family = isIP(ip);
  if (family === 4) return v4Reason(ip);
  if (family !== 6) return 'not an IP address';

  const g = ipv6Groups(ip);
  const word = (i: number): number => g[i] ?? 0;
  const zeroUpTo = (n: number): boolean => g.slice(0, n).every((x) => x === 0);
  const embedded = (label: string, v4: string): string | undefined => {
    const reason = v4Reason(v4);
    return reason === undefined ? undefined : `${label} ${reason}`;
  };
  // ::ffff:0:0/96
  if (zeroUpTo(5) && word(5) === 0xffff) return embedded('IPv4-mapped', v4From(word(6), word(7)));
  // 64:ff9b::/96, the well-known NAT64 prefix: the gateway connects to the embedded IPv4.
  if (word(0) === 0x64 && word(1) === 0xff9b && g.slice(2, 6).every((x) => x === 0)) {
    return embedded('NAT64', v4From(word(6), word(7)));
  }
  for (const [reason, list] of V6) if (list.check(ip, 'ipv6')) return reason;
  if (!GLOBAL_UNICAST.check(ip, 'ipv6')) return 'reserved';
  // 2002::/16: 6to4 relays forward to the IPv4 address in bits 16–47.
  if (word(0) === 0x2002) return embedded('6to4', v4From(word(1), word(2)));
  // 2001::/32: Teredo; the client's IPv4 is the last 32 bits, inverted.
  if (word(0) === 0x2001 && word(1) === 0) return embedded('Teredo', v4From(word(6) ^ 0xffff, word(7) ^ 0xffff));
  return undefined;
}

/** Resolves a hostname to all its addresses; `dns.promises.lookup` has this shape. */
export type DestinationLookup = (
  hostname: string,
  options: { all: true },
) => Promise<ReadonlyArray<{ address: string; family: number }>>;

/** Options of {@link assertPublicDestination}. */
export interface AssertPublicDestinationOptions {
  /**
   * How a hostname is resolved. Inject one in tests, or to use the resolver deliveries will use.
   * @default dns.promises.lookup
   */
  lookup?: DestinationLookup;
}

/** The URL's host as an address or name: no brackets, no trailing dot, lower case. */
export function destinationHost(url: URL): string {
  let host = url.hostname.toLowerCase();
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (host.endsWith('.')) host = host.slice(0, -1);
  return host;
}

/**
 * Refuse a webhook endpoint URL whose destination is not public, before it is registered: a
 * `localhost` / `*.localhost` host, a non-public IP literal (bracketed IPv6 included), or a
 * hostname any of whose addresses is non-public (see {@link nonPublicReason}). A hostname that
 * does not resolve is not refused here: DNS may be down for a moment, and delivery checks the
 * address it actually connects to anyway.
 *
 * @throws {WebhookDestinationError} `E_WEBHOOK_DESTINATION`, naming the URL (origin and path
 *   only), the address and the reason.
 * @throws {StorageConfigError} `E_CONFIG` when `url` is not a URL at all.
 * @example
 * ```ts
 * await assertPublicDestination('https://hooks.example.com/doorito'); // resolves
 * await assertPublicDestination('http://127.0.0.1:3000/hooks');       // throws: loopback
 * await assertPublicDestination('http://[fd00::1]/hooks');            // throws: unique local
 * ```
 */
export async function assertPublicDestination(url: string, options: AssertPublicDestinationOptions = {}): Promise<void> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (cause) {
    throw new StorageConfigError('The webhook endpoint url is not a valid URL; pass an absolute http:// or https:// URL.', {
      option: 'url',
      cause,
    });
  }
  const host = destinationHost(parsed);
  if (host === 'localhost' || host.endsWith('.localhost')) throw new WebhookDestinationError(url, 'loopback');
  if (isIP(host) !== 0) {
    const reason = nonPublicReason(host);
    if (reason !== undefined) throw new WebhookDestinationError(url, reason, { address: host });
    return;
  }
  const lookup = options.lookup ?? ((hostname, lookupOptions) => dnsPromises.lookup(hostname, lookupOptions));
  let addresses: ReadonlyArray<{ address: string }>;
  try {
    addresses = await lookup(host, { all: true });
  } catch {
    // Not resolvable now; delivery re-checks the connected address, so nothing slips through.
    return;
  }
  for (const { address } of addresses) {
    const reason = nonPublicReason(address);
    if (reason !== undefined) throw new WebhookDestinationError(url, reason, { address });
  }
}
