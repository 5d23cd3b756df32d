/**
 * The destination guard: which addresses the relay refuses, and the registration check. A
 * hostname's resolution is injected, so no test needs real DNS; `localhost` is refused by name.
 */
import { describe, expect, it } from 'vitest';
import { StorageConfigError, WebhookDestinationError, isStorageError, isWebhookDestinationError } from '../../src/errors.js';
import { assertPublicDestination, nonPublicReason, type DestinationLookup } from '../../src/outbox/destination-guard.js';

const NON_PUBLIC: Array<[address: string, reason: string]> = [
  // IPv4
  ['127.0.0.1', 'loopback'],
  ['127.255.255.254', 'loopback'],
  ['10.0.0.1', 'private'],
  ['10.255.255.255', 'private'],
  ['172.16.0.1', 'private'],
  ['172.31.255.255', 'private'],
  ['192.168.1.10', 'private'],
  ['169.254.169.254', 'link-local'], // cloud metadata service
  ['100.64.0.1', 'carrier-grade NAT'],
  ['100.127.255.255', 'carrier-grade NAT'],
  ['0.0.0.0', 'unspecified'],
  ['0.1.2.3', 'reserved'],
  ['255.255.255.255', 'broadcast'],
  ['224.0.0.1', 'multicast'],
  ['239.255.255.250', 'multicast'],
  ['240.0.0.1', 'reserved'],
  ['192.0.0.170', 'reserved'],
  ['192.88.99.1', 'reserved'],
  ['192.0.2.1', 'documentation'],
  ['198.51.100.7', 'documentation'],
  ['203.0.113.9', 'documentation'],
  ['198.18.0.1', 'benchmarking'],
  ['198.19.255.255', 'benchmarking'],
  // IPv6
  ['::1', 'loopback'],
  ['0:0:0:0:0:0:0:1', 'loopback'],
  ['::', 'unspecified'],
  ['fc00::1', 'unique local'],
  ['fd12:3456:789a::1', 'unique local'],
  ['fe80::1', 'link-local'],
  ['fe80::1%eth0', 'link-local'],
  ['febf:ffff::1', 'link-local'],
  ['fec0::1', 'site-local'],
  ['ff02::1', 'multicast'],
  ['2001:db8::1', 'documentation'],
  ['3fff::1', 'documentation'],
  ['2001:2::1', 'benchmarking'],
  ['2001:10::1', 'reserved'],
  ['100::1', 'reserved'], // discard-only
  ['::1.2.3.4', 'reserved'], // IPv4-compatible, deprecated
  ['4000::1', 'reserved'], // outside global unicast
  ['64:ff9b:1::1', 'reserved'], // local-use NAT64
  // IPv4-mapped, dotted and hex forms, and other embeddings
  ['::ffff:127.0.0.1', 'IPv4-mapped loopback'],
  ['::ffff:7f00:1', 'IPv4-mapped loopback'],
  ['0:0:0:0:0:ffff:7f00:0001', 'IPv4-mapped loopback'],
  ['::FFFF:10.0.0.1', 'IPv4-mapped private'],
  ['::ffff:a9fe:a9fe', 'IPv4-mapped link-local'],
  ['::ffff:0.0.0.0', 'IPv4-mapped unspecified'],
  ['[::ffff:192.168.0.1]', 'IPv4-mapped private'],
  ['64:ff9b::127.0.0.1', 'NAT64 loopback'],
  ['64:ff9b::a00:1', 'NAT64 private'],
  ['2002:7f00:1::', '6to4 loopback'],
  ['2002:c0a8:101::1', '6to4 private'],
  // Teredo: client 127.0.0.1 is stored inverted as 80ff:fffe.
  ['2001:0:4136:e378:8000:63bf:80ff:fffe', 'Teredo loopback'],
  // Not an IP literal: fail closed.
  ['localhost', 'not an IP address'],
  ['127.1', 'not an IP address'],
  ['', 'not an IP address'],
];

const PUBLIC = [
  '8.8.8.8',
  '1.1.1.1',
  '9.9.9.9',
  '93.184.216.34',
  '172.15.255.255', // just below 172.16/12
  '172.32.0.0', // just above
  '100.63.255.255', // just below 100.64/10
  '100.128.0.0',
  '192.167.255.255',
  '198.17.255.255',
  '198.20.0.0',
  '223.255.255.255',
  '11.0.0.1',
  '2606:4700:4700::1111',
  '2001:4860:4860::8888',
  '2a00:1450:4001:81b::200e',
  '::ffff:8.8.8.8', // IPv4-mapped public
  '::ffff:101:101', // hex form of ::ffff:1.1.1.1
  '64:ff9b::808:808', // NAT64 of 8.8.8.8
  '2002:808:808::1', // 6to4 of 8.8.8.8
  '2001:0:4136:e378:8000:63bf:f7f7:f7f7', // Teredo, client 8.8.8.8
];

describe('nonPublicReason', () => {
  it.each(NON_PUBLIC)('%s is not public: %s', (address, reason) => {
    expect(nonPublicReason(address)).toBe(reason);
  });

  it.each(PUBLIC)('%s is public', (address) => {
    expect(nonPublicReason(address)).toBeUndefined();
  });
});

/** A resolver that answers from a table, and fails for anything else, like an unknown name. */
function fakeLookup(table: Record<string, string[]>): DestinationLookup & { calls: string[] } {
  const calls: string[] = [];
  const lookup = async (hostname: string) => {
    calls.push(hostname);
    const addresses = table[hostname];
    if (addresses === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  return Object.assign(lookup, { calls });
}

async function refusal(url: string, lookup?: DestinationLookup): Promise<WebhookDestinationError> {
  const error: unknown = await assertPublicDestination(url, lookup === undefined ? {} : { lookup }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isWebhookDestinationError(error)).toBe(true);
  return error as WebhookDestinationError;
}

describe('assertPublicDestination', () => {
  const lookup = fakeLookup({
    'hooks.example.com': ['93.184.216.34', '2606:2800:220:1:248:1893:25c8:1946'],
    'internal.example.com': ['10.0.0.7'],
    'rebind.example.com': ['93.184.216.34', '127.0.0.1'],
    'v6-local.example.com': ['2606:4700:4700::1111', 'fd00::5'],
    'mapped.example.com': ['::ffff:169.254.169.254'],
  });

  it('accepts a public IP literal and a hostname whose addresses are all public', async () => {
    await expect(assertPublicDestination('https://93.184.216.34/hook', { lookup })).resolves.toBeUndefined();
    await expect(assertPublicDestination('https://[2606:4700:4700::1111]:8443/hook', { lookup })).resolves.toBeUndefined();
    await expect(assertPublicDestination('https://hooks.example.com/doorito?token=s3cret', { lookup })).resolves.toBeUndefined();
    expect(lookup.calls).toEqual(['hooks.example.com']);
  });

  it('refuses a loopback IP literal, naming the URL without its query, the address, the reason and the fix', async () => {
    const error = await refusal('http://user:pa55@127.0.0.1:3000/hooks?token=s3cret#frag');
    expect(error).toBeInstanceOf(WebhookDestinationError);
    expect(isStorageError(error)).toBe(true);
    expect(error.code).toBe('E_WEBHOOK_DESTINATION');
    expect(error.name).toBe('WebhookDestinationError');
    expect(error.url).toBe('http://127.0.0.1:3000/hooks');
    expect(error.address).toBe('127.0.0.1');
    expect(error.reason).toBe('loopback');
    expect(error.message).toContain('http://127.0.0.1:3000/hooks');
    expect(error.message).toContain('127.0.0.1 is not a public address (loopback)');
    expect(error.message).toContain('allowPrivateNetworks: true');
    for (const secret of ['s3cret', 'pa55', 'user', 'frag']) expect(error.message).not.toContain(secret);
  });

  it.each([
    ['http://10.1.2.3/hook', '10.1.2.3', 'private'],
    ['http://169.254.169.254/latest/meta-data', '169.254.169.254', 'link-local'],
    ['http://[::1]:8080/hook', '::1', 'loopback'],
    ['http://[fd00::1]/hook', 'fd00::1', 'unique local'],
    ['http://[::ffff:127.0.0.1]/hook', '::ffff:7f00:1', 'IPv4-mapped loopback'],
    ['http://[::ffff:7f00:1]/hook', '::ffff:7f00:1', 'IPv4-mapped loopback'],
    ['http://0.0.0.0:9000/hook', '0.0.0.0', 'unspecified'],
    // The URL parser normalises these to 127.0.0.1 before anything resolves them.
    ['http://2130706433/hook', '127.0.0.1', 'loopback'],
    ['http://0x7f.1/hook', '127.0.0.1', 'loopback'],
    ['http://127.0.0.1./hook', '127.0.0.1', 'loopback'],
  ])('refuses the IP literal in %s', async (url, address, reason) => {
    const error = await refusal(url, lookup);
    expect(error.address).toBe(address);
    expect(error.reason).toBe(reason);
  });

  it.each(['http://localhost:3000/hook', 'http://LOCALHOST/hook', 'http://localhost./hook', 'http://portal.localhost/hook'])(
    'refuses %s by name, without resolving it',
    async (url) => {
      const resolver = fakeLookup({});
      const error = await refusal(url, resolver);
      expect(error.reason).toBe('loopback');
      expect(error.address).toBeUndefined();
      expect(error.message).toMatch(/localhost\.? is not a public address \(loopback\)/);
      expect(resolver.calls).toEqual([]);
    },
  );

  it.each([
    ['https://internal.example.com/hook', '10.0.0.7', 'private'],
    ['https://rebind.example.com/hook', '127.0.0.1', 'loopback'], // one bad address is enough
    ['https://v6-local.example.com/hook', 'fd00::5', 'unique local'],
    ['https://mapped.example.com/hook', '::ffff:169.254.169.254', 'IPv4-mapped link-local'],
  ])('refuses %s, which resolves to a non-public address', async (url, address, reason) => {
    const error = await refusal(url, lookup);
    expect(error.address).toBe(address);
    expect(error.reason).toBe(reason);
    expect(error.message).toContain(`${address} is not a public address (${reason})`);
  });

  it('does not refuse a hostname that does not resolve now (delivery checks the connected address)', async () => {
    await expect(assertPublicDestination('https://not-yet.example.com/hook', { lookup })).resolves.toBeUndefined();
  });

  it('says the url is invalid with a StorageConfigError, not a destination error', async () => {
    const error: unknown = await assertPublicDestination('not a url').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageConfigError);
    expect((error as StorageConfigError).option).toBe('url');
  });
});

describe('isWebhookDestinationError', () => {
  it('matches an error from another copy of the package by name', () => {
    const foreign = Object.assign(new Error('refused'), { name: 'WebhookDestinationError' });
    expect(isWebhookDestinationError(foreign)).toBe(true);
    expect(isStorageError(foreign)).toBe(true);
    expect(isWebhookDestinationError(new Error('refused'))).toBe(false);
  });

  it('keeps the cause', () => {
    const cause = new Error('underlying');
    const error = new WebhookDestinationError('http://10.0.0.1/x', 'private', { address: '10.0.0.1', cause });
    expect(error.cause).toBe(cause);
  });
});
