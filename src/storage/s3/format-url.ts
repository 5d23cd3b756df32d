/**
 * An HTTP request's URL, formatted exactly as the SDK's `formatUrl` (`@aws-sdk/core/util`) does
 * for presigned URLs: query keys sorted, RFC 3986 escaping. Ours so that the S3 adapter imports
 * only the packages a user installs (`@aws-sdk/client-s3`, `@aws-sdk/s3-request-presigner`),
 * not the SDK's internals; url-signer's test holds the two byte-identical.
 */
export interface UrlParts {
  protocol: string;
  hostname: string;
  port?: number | undefined;
  path: string;
  query?: Record<string, string | string[] | null>;
  username?: string;
  password?: string;
  fragment?: string;
}

const hexEncode = (c: string): string => `%${c.charCodeAt(0).toString(16).toUpperCase()}`;
const escapeUri = (value: string): string => encodeURIComponent(value).replace(/[!'()*]/gu, hexEncode);

function queryString(query: Record<string, string | string[] | null>): string {
  const parts: string[] = [];
  for (const rawKey of Object.keys(query).sort()) {
    const value = query[rawKey];
    const key = escapeUri(rawKey);
    if (Array.isArray(value)) for (const item of value) parts.push(`${key}=${escapeUri(item)}`);
    else parts.push(typeof value === 'string' ? `${key}=${escapeUri(value)}` : key);
  }
  return parts.join('&');
}

export function formatUrl(request: UrlParts): string {
  const protocol = request.protocol.endsWith(':') ? request.protocol : `${request.protocol}:`;
  const host = request.port ? `${request.hostname}:${request.port}` : request.hostname;
  const path = request.path.startsWith('/') || request.path === '' ? request.path : `/${request.path}`;
  const query = request.query === undefined ? '' : queryString(request.query);
  const auth = request.username != null || request.password != null ? `${request.username ?? ''}:${request.password ?? ''}@` : '';
  const fragment = request.fragment ? `#${request.fragment}` : '';
  return `${protocol}//${auth}${host}${path}${query === '' ? '' : `?${query}`}${fragment}`;
}
