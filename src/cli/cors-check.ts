/**
 * `check --origin`: may a browser on that origin PUT straight to the bucket (presignUpload, and
 * the part PUTs of a multipart upload)? Asked the way a browser asks: a preflight `OPTIONS` to a
 * presigned upload URL at the endpoint browsers use. The bucket's CORS rules (GetBucketCors), when
 * the server has them, say why. Loaded, with the AWS SDK, only when S3 is configured.
 */
import { GetBucketCorsCommand, type CORSRule } from '@aws-sdk/client-s3';
import { s3ErrorInfo } from '../storage/s3/errors.js';
import { S3Storage } from '../storage/s3/s3-storage.js';
import type { Storage } from '../types.js';
import type { CheckStep } from './run-check.js';

/** The key the preflight names, under the storage's location. Nothing is ever written there. */
export const CORS_PROBE_KEY = 'doorito-check/cors-probe';
/** What a browser's preflight asks for before a presigned PUT with `md5`. */
const REQUESTED_HEADERS = ['content-type', 'content-md5'];
const DOCS = 'see "CORS for direct uploads" in docs/uploads.md';

type BucketCors =
  | { state: 'rules'; rules: CORSRule[] }
  | { state: 'none' }
  | { state: 'unsupported'; answer: string }
  | { state: 'unreadable'; answer: string };

interface Preflight {
  /** Where it went: the URL without its query (which holds the signature). */
  where: string;
  status: number;
  /** Why a browser would refuse to send the PUT; empty when it would send it. */
  problems: string[];
  expose: string[];
}

const list = (header: string | null): string[] =>
  (header ?? '').split(',').map((s) => s.trim().toLowerCase()).filter((s) => s !== '');

/** S3's CORS patterns: one optional `*` matching anything. */
const matches = (pattern: string, value: string, ignoreCase: boolean): boolean =>
  new RegExp(`^${pattern.split('*').map((part) => part.replace(/[.*+?^${}()|[\]\\]/gu, '\\$&')).join('.*')}$`, ignoreCase ? 'iu' : 'u').test(value);

const allowsHeader = (rule: CORSRule, header: string): boolean => (rule.AllowedHeaders ?? []).some((p) => matches(p, header, true));

/** The first rule that allows this preflight, as S3 picks it. */
function matchRule(rules: CORSRule[], origin: string): { index: number; rule: CORSRule } | undefined {
  const index = rules.findIndex(
    (rule) =>
      (rule.AllowedOrigins ?? []).some((p) => matches(p, origin, false)) &&
      (rule.AllowedMethods ?? []).some((m) => m.toUpperCase() === 'PUT') &&
      REQUESTED_HEADERS.every((h) => allowsHeader(rule, h)),
  );
  const rule = rules[index];
  return rule === undefined ? undefined : { index, rule };
}

/** https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketCors.html: no rules is the error NoSuchCORSConfiguration. */
async function readBucketCors(s3: S3Storage): Promise<BucketCors> {
  try {
    const rules = (await s3.client.send(new GetBucketCorsCommand({ Bucket: s3.bucket }))).CORSRules ?? [];
    return rules.length === 0 ? { state: 'none' } : { state: 'rules', rules };
  } catch (error) {
    const { code, status } = s3ErrorInfo(error);
    const answer = `HTTP ${status ?? '?'}${code === undefined ? '' : ` ${code}`}`;
    if (code === 'NoSuchCORSConfiguration') return { state: 'none' };
    // OpenStack Swift's s3api: 501 NotImplemented for every ?cors request.
    if (status === 501 || code === 'NotImplemented') return { state: 'unsupported', answer };
    return { state: 'unreadable', answer };
  }
}

async function preflight(url: string, origin: string, fetchUrl: typeof fetch): Promise<Preflight> {
  const where = `${new URL(url).origin}${new URL(url).pathname}`;
  let response: Response;
  try {
    response = await fetchUrl(url, {
      method: 'OPTIONS',
      headers: { Origin: origin, 'Access-Control-Request-Method': 'PUT', 'Access-Control-Request-Headers': REQUESTED_HEADERS.join(',') },
    });
  } catch (error) {
    // undici says only "fetch failed"; the reason (ECONNREFUSED, ENOTFOUND …) is its cause.
    const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
    const reason = typeof cause?.code === 'string' ? cause.code : typeof cause?.message === 'string' ? cause.message : error instanceof Error ? error.message : String(error);
    throw new Error(`OPTIONS ${where} failed (${reason}): is this the endpoint browsers reach (AWS_S3_PUBLIC_ENDPOINT_URL)?`, { cause: error });
  }
  const code = /<Code>([^<]+)<\/Code>/u.exec(await response.text())?.[1];
  const allowOrigin = response.headers.get('access-control-allow-origin');
  const methods = list(response.headers.get('access-control-allow-methods'));
  const headers = list(response.headers.get('access-control-allow-headers'));
  const problems: string[] = [];
  if (response.status < 200 || response.status > 299) problems.push(`HTTP ${response.status}${code === undefined ? '' : ` ${code}`}`);
  if (allowOrigin === null) problems.push('no Access-Control-Allow-Origin');
  else if (allowOrigin !== origin && allowOrigin !== '*') problems.push(`Access-Control-Allow-Origin is ${allowOrigin}`);
  if (allowOrigin !== null && !methods.includes('put') && !methods.includes('*')) problems.push('Access-Control-Allow-Methods lacks PUT');
  const missing = REQUESTED_HEADERS.filter((h) => !headers.includes(h) && !headers.includes('*'));
  if (allowOrigin !== null && missing.length > 0) problems.push(`Access-Control-Allow-Headers lacks ${missing.join(', ')}`);
  return { where, status: response.status, problems, expose: list(response.headers.get('access-control-expose-headers')) };
}

const describeRule = (rules: CORSRule[], { index, rule }: { index: number; rule: CORSRule }): string =>
  `bucket CORS rule ${index + 1} of ${rules.length}${rule.ID === undefined ? '' : ` ("${rule.ID}")`} matches (AllowedOrigins ${JSON.stringify(rule.AllowedOrigins ?? [])})`;

/** The preflight passed: say where the permission comes from, and warn about what multipart or `contentDisposition` lack. */
function allowed(name: string, flight: Preflight, cors: BucketCors, origin: string): CheckStep {
  const match = cors.state === 'rules' ? matchRule(cors.rules, origin) : undefined;
  const source =
    match !== undefined && cors.state === 'rules'
      ? describeRule(cors.rules, match)
      : cors.state === 'unsupported'
        ? `the server has no bucket CORS (GetBucketCors: ${cors.answer}); a server-wide setting answers the preflight`
        : cors.state === 'unreadable'
          ? `the bucket's CORS rules could not be read (GetBucketCors: ${cors.answer})`
          : 'no bucket CORS rule allows it, so something in front of the bucket (a proxy, a server-wide setting) answers the preflight';
  const warnings: string[] = [];
  const exposed = match !== undefined ? (match.rule.ExposeHeaders ?? []).some((h) => h.toLowerCase() === 'etag' || h === '*') : flight.expose.includes('etag') ? true : undefined;
  if (exposed === false) {
    warnings.push('ETag is not exposed (ExposeHeaders lacks "ETag"): single PUTs work, but a multipart upload (Uppy) cannot read its part ETags; add "ETag" to ExposeHeaders');
  } else if (exposed === undefined) {
    warnings.push('whether ETag is exposed could not be told: a multipart upload (Uppy) needs it; single PUTs do not');
  }
  if (match !== undefined && !allowsHeader(match.rule, 'content-disposition')) {
    warnings.push('the rule does not allow the Content-Disposition header: presignUpload() with contentDisposition will be refused; allow it, or "*"');
  }
  const detail = `allowed: the preflight OPTIONS ${flight.where} answered HTTP ${flight.status} for PUT with ${REQUESTED_HEADERS.join(', ')}; ${source}`;
  return warnings.length === 0
    ? { name, ok: true, status: 'ok', detail: `${detail}; ETag is exposed` }
    : { name, ok: true, status: 'warn', detail: `${detail}; but ${warnings.join('; ')}` };
}

/** The preflight failed: a browser on this origin cannot PUT. Say why, and what to do. */
function refused(name: string, flight: Preflight, cors: BucketCors, origin: string): CheckStep {
  const answer = `the preflight OPTIONS ${flight.where} answered ${flight.problems.join(', ')}`;
  if (cors.state === 'unsupported') {
    return {
      name,
      ok: false,
      status: 'unsupported',
      detail:
        `the server does not implement bucket CORS (GetBucketCors: ${cors.answer}), and ${answer}: a browser on ${origin} cannot upload to it directly. ` +
        "Instead upload through your app (UploadService's createUploadFile(), not createDirectUpload()), serve the app and the storage from one origin behind a proxy, " +
        `or have the operator enable CORS on the server itself (OpenStack Swift: s3api's cors_preflight_allow_origin and the container's X-Container-Meta-Access-Control-Allow-Origin and -Expose-Headers); ${DOCS}`,
    };
  }
  const fix = `add a rule for ${origin} (PutBucketCors); ${DOCS}`;
  const match = cors.state === 'rules' ? matchRule(cors.rules, origin) : undefined;
  const why =
    cors.state === 'none'
      ? `the bucket has no CORS configuration: ${fix}`
      : cors.state === 'unreadable'
        ? `the bucket's CORS rules could not be read (GetBucketCors: ${cors.answer}): ${fix}`
        : match === undefined
          ? `none of the bucket's ${cors.rules.length} CORS rule(s) allows PUT from ${origin} with ${REQUESTED_HEADERS.join(', ')} ` +
            `(their AllowedOrigins: ${JSON.stringify(cors.rules.flatMap((r) => r.AllowedOrigins ?? []))}): ${fix}`
          : `${describeRule(cors.rules, match)}, yet the server or something in front of it (a proxy, a CDN) does not honour it: ` +
            "check that browsers reach the storage at this endpoint (AWS_S3_PUBLIC_ENDPOINT_URL) and that nothing there answers OPTIONS itself";
  return { name, ok: false, status: 'fail', detail: `refused: ${answer}; ${why}` };
}

/** One step per origin; never throws. */
export async function corsChecks(storage: Storage, origins: string[], fetchUrl: typeof fetch): Promise<CheckStep[]> {
  if (!(storage instanceof S3Storage)) throw new TypeError('expected an S3Storage');
  const cors = await readBucketCors(storage);
  const steps: CheckStep[] = [];
  for (const origin of origins) {
    const name = `CORS for direct uploads from ${origin}`;
    try {
      // The URL a browser gets from presignUpload(): the public endpoint's, when one is configured.
      const { url } = await storage.presignUpload(CORS_PROBE_KEY, { contentType: 'application/octet-stream', size: 1, expiresIn: 300 });
      const flight = await preflight(url, origin, fetchUrl);
      steps.push(flight.problems.length === 0 ? allowed(name, flight, cors, origin) : refused(name, flight, cors, origin));
    } catch (error) {
      steps.push({ name, ok: false, status: 'fail', detail: `the preflight could not be sent: ${error instanceof Error ? error.message : String(error)}` });
    }
  }
  return steps;
}
