/**
 * Fast presigned GET URLs.
 *
 * `getSignedUrl()` resolves the endpoint and runs the whole command middleware stack for every
 * URL (several hundred µs of CPU each). The result only differs by key, so we run that machinery
 * once, through the same middleware `getSignedUrl` uses, to capture the request shape (host,
 * path prefix, query, headers, signing region and service) and to do once what
 * `S3RequestPresigner.prepareRequest` does every time; then each URL clones the shape, sets the
 * key and signs it with the client's own SigV4 signer (`config.signer`, whose `SignatureV4`
 * caches the signing key per day, region and service), the signer `S3RequestPresigner`
 * delegates to for SigV4. SigV4a
 * (multi-region access points) keeps the full `S3RequestPresigner`. A test proves the URL is
 * byte-identical to `getSignedUrl()`'s at a fixed clock.
 */
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { S3RequestPresigner } from '@aws-sdk/s3-request-presigner';
import { encodeKeyForUrl } from '../../keys.js';
import { formatUrl } from './format-url.js';

interface RequestShape {
  protocol: string;
  hostname: string;
  port?: number | undefined;
  method: string;
  path: string;
  query: Record<string, string | string[] | null>;
  headers: Record<string, string>;
  body?: unknown;
  username?: string;
  password?: string;
  fragment?: string;
}

interface Template {
  request: RequestShape;
  /** The path before the key (`/bucket/` path-style, `/` virtual-host). */
  pathPrefix: string;
  signingRegion: string | undefined;
  signingService: string | undefined;
  presign: (request: RequestShape, options: Record<string, unknown>) => Promise<unknown>;
}

// What S3RequestPresigner.presign adds to every call.
const UNSIGNABLE_HEADERS = new Set(['content-type']);
const UNHOISTABLE_HEADERS = new Set<string>();

const PROBE_KEY = 'doorito-probe';

type Handler = (args: { request: unknown }) => Promise<unknown>;

/** Presigns GET URLs for one bucket of one client. Create once; reuse for every URL. */
export class UrlSigner {
  readonly #client: S3Client;
  readonly #bucket: string;
  #template: Promise<Template> | undefined;
  #resolved: Template | undefined;

  constructor(client: S3Client, bucket: string) {
    this.#client = client;
    this.#bucket = bucket;
  }

  async #capture(): Promise<Template> {
    const stack = this.#client.middlewareStack.clone();
    let captured: { request: RequestShape; context: Record<string, unknown> } | undefined;
    stack.addRelativeTo(
      ((_next: Handler, context: Record<string, unknown>) => async (args: { request: unknown }) => {
        captured = { request: args.request as RequestShape, context };
        // Stop here, before signing and sending, exactly as getSignedUrl's middleware does.
        return { response: {}, output: { $metadata: { httpStatusCode: 200 } } };
      }) as never,
      { name: 'doorito:captureRequest', relation: 'before', toMiddleware: 'awsAuthMiddleware', override: true },
    );
    const command = new GetObjectCommand({ Bucket: this.#bucket, Key: PROBE_KEY });
    const handler = command.resolveMiddleware(stack as never, this.#client.config, {});
    await handler({ input: command.input });
    if (captured === undefined) throw new Error('could not capture the GetObject request shape');
    const { request, context } = captured;
    // The same per-invocation headers getSignedUrl drops.
    const headers = { ...request.headers };
    delete headers['amz-sdk-invocation-id'];
    delete headers['amz-sdk-request'];
    delete headers['x-amz-user-agent'];
    const encodedProbe = encodeKeyForUrl(PROBE_KEY);
    if (!request.path.endsWith(encodedProbe)) throw new Error(`unexpected GetObject path ${request.path}`);
    const authScheme = (context['endpointV2'] as { properties?: { authSchemes?: Array<Record<string, unknown>> } } | undefined)
      ?.properties?.authSchemes?.[0];
    const region = authScheme?.['signingRegion'] as string | undefined;
    const signingName = authScheme?.['signingName'] as string | undefined;
    const config = this.#client.config;
    const signingRegion = (context['signing_region'] as string | undefined) ?? region;
    let presign: Template['presign'];
    if (authScheme?.['name'] === 'sigv4a') {
      const presigner = new S3RequestPresigner({
        ...config,
        ...(signingName === undefined ? {} : { signingName }),
        region: async () => (authScheme['signingRegionSet'] as string[] | undefined)?.join(',') ?? (await config.region()),
      });
      presign = (request, options) => presigner.presign(request as never, options);
    } else {
      // The client's signer (the SDK's SignatureV4 for S3: service s3, no double URI escaping),
      // the one every request of this client is signed with.
      const signer = (await config.signer({ name: 'sigv4', properties: {} } as never)) as unknown as {
        presign: (request: never, options: Record<string, unknown>) => Promise<unknown>;
      };
      // S3RequestPresigner.prepareRequest, done once: an unsigned payload, and the host header.
      headers['X-Amz-Content-Sha256'] = 'UNSIGNED-PAYLOAD';
      if (headers['host'] === undefined || (headers['host'] === request.hostname && request.port != null)) {
        headers['host'] = `${request.hostname}${request.port != null ? `:${request.port}` : ''}`;
      }
      presign = (request, options) =>
        signer.presign(request as never, { ...options, unsignableHeaders: UNSIGNABLE_HEADERS, unhoistableHeaders: UNHOISTABLE_HEADERS });
    }
    return {
      request: { ...request, headers, query: { ...request.query } },
      pathPrefix: request.path.slice(0, -encodedProbe.length),
      signingRegion,
      signingService: context['signing_service'] as string | undefined,
      presign,
    };
  }

  async #shape(): Promise<Template> {
    if (this.#resolved !== undefined) return this.#resolved;
    this.#template ??= this.#capture().then(
      (template) => (this.#resolved = template),
      (error: unknown) => {
        this.#template = undefined;
        throw error;
      },
    );
    return this.#template;
  }

  /** A plain (unsigned) URL for the full object key, for public buckets. */
  async plainUrl(fullKey: string): Promise<string> {
    const template = await this.#shape();
    return formatUrl({ ...template.request, path: template.pathPrefix + encodeKeyForUrl(fullKey), query: {} } as never);
  }

  /**
   * A presigned GET URL for the full object key (prefix included).
   * @param query extra response overrides, e.g. `response-content-disposition`
   */
  async presign(fullKey: string, options: { expiresIn: number; query?: Record<string, string>; signingDate?: Date }): Promise<string> {
    const template = this.#resolved ?? (await this.#shape());
    const request = {
      ...template.request,
      path: template.pathPrefix + encodeKeyForUrl(fullKey),
      query: options.query === undefined ? { ...template.request.query } : { ...template.request.query, ...options.query },
      headers: { ...template.request.headers },
    };
    const signed = await template.presign(request, {
      expiresIn: options.expiresIn,
      ...(options.signingDate === undefined ? {} : { signingDate: options.signingDate }),
      ...(template.signingRegion === undefined ? {} : { signingRegion: template.signingRegion }),
      ...(template.signingService === undefined ? {} : { signingService: template.signingService }),
    });
    return formatUrl(signed as never);
  }
}
