/**
 * The AWS side as the daemon sees it: SSM StartSession / ResumeSession / TerminateSession /
 * DescribeInstanceInformation through @aws-sdk/client-ssm with the SDK's default credential chain per
 * profile and region, and the SigV4 signature for the data-channel WebSocket upgrade (SPEC 3.2).
 */

import type { SSMClient } from '@aws-sdk/client-ssm';
import { TunnelError } from './errors.js';
import { expectedStreamOrigin } from './preconnect.js';

export interface SessionTokens {
  sessionId: string;
  tokenValue: string;
  streamUrl: string;
}

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: Date;
}

export interface AwsTarget {
  profile?: string;
  region: string;
  endpoint?: string;
  /** Static credentials instead of the SDK's default chain (tests and benchmarks only). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Each SSM call (SDK retries included) gives up after this long; default AWS_CALL_TIMEOUT_MS. */
  callTimeoutMs?: number;
}

/** A call that has not answered in 20 s will not answer: say so rather than keep clients waiting. */
export const AWS_CALL_TIMEOUT_MS = 20_000;

/** What a tunnel needs from AWS; the daemon's only dependency on the SDK. */
export interface SsmGateway {
  startSession(
    target: string,
    documentName: string,
    parameters: Record<string, string[]>,
  ): Promise<SessionTokens>;
  /** Undefined when the service says the session is gone (empty TokenValue, SPEC 2.3). */
  resumeSession(sessionId: string): Promise<SessionTokens | undefined>;
  terminateSession(sessionId: string): Promise<void>;
  /** Online instance ids carrying tag key=value. */
  findInstancesByTag(key: string, value: string): Promise<string[]>;
  /** What SSM knows of one managed instance (undefined: not registered with SSM in this region). */
  describeInstance(id: string): Promise<{ pingStatus: string; agentVersion?: string } | undefined>;
  /** The identity this gateway signs with (the SDK's chain for the profile), e.g. for RDS auth tokens. */
  credentials(): Promise<AwsCredentials>;
  /** Headers for the signed WebSocket upgrade of `streamUrl`. */
  signStreamUrl(streamUrl: string): Promise<Record<string, string>>;
  /** Where the next StartSession's stream URL is expected (origin), to connect there meanwhile. */
  expectedStreamOrigin?(): string | undefined;
  /** True when the SSM endpoint is on this machine (the simulator): plain ws:// is then acceptable. */
  readonly loopbackEndpoint: boolean;
  destroy(): void;
}

const PRESIGNED_KEYS = [
  'X-Amz-Algorithm',
  'X-Amz-Credential',
  'X-Amz-Date',
  'X-Amz-Expires',
  'X-Amz-SignedHeaders',
  'X-Amz-Signature',
  'X-Amz-Security-Token',
];

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

/**
 * The SDK is loaded on the first AWS call, not at daemon start: it is the largest part of an idle
 * daemon's memory (~24 MB), and tunnels nobody connects to never need it.
 */
let sdk: Promise<typeof import('@aws-sdk/client-ssm')> | undefined;
const loadSdk = () => {
  sdk ??= import('@aws-sdk/client-ssm');
  return sdk;
};

/** The upgrade's SigV4 signer, ~6 MB more: loaded while StartSession is on the wire, like the SDK. */
let signerModules:
  | Promise<
      [
        typeof import('@aws-crypto/sha256-js'),
        typeof import('@smithy/protocol-http'),
        typeof import('@smithy/signature-v4'),
      ]
    >
  | undefined;
const loadSigner = () => {
  signerModules ??= Promise.all([
    import('@aws-crypto/sha256-js'),
    import('@smithy/protocol-http'),
    import('@smithy/signature-v4'),
  ]);
  return signerModules;
};

export function createSsmGateway(t: AwsTarget): SsmGateway {
  const endpoint = t.endpoint ?? process.env.AWS_ENDPOINT_URL_SSM ?? process.env.AWS_ENDPOINT_URL;
  let clientPromise: Promise<SSMClient> | undefined;
  const getClient = () => {
    clientPromise ??= loadSdk().then(
      ({ SSMClient }) =>
        new SSMClient({
          region: t.region,
          ...(t.profile ? { profile: t.profile } : {}),
          ...(endpoint ? { endpoint } : {}),
          ...(t.credentials ? { credentials: t.credentials } : {}),
        }),
    );
    return clientPromise;
  };
  const fixFor = (e: unknown) => classifyAwsError(e, t.profile, { region: t.region, endpoint });
  let lastStreamOrigin: string | undefined;
  const remember = (streamUrl: string) => {
    try {
      lastStreamOrigin = new URL(streamUrl).origin;
    } catch {
      // StartSession's own check refuses a bad URL; nothing to remember.
    }
  };
  const timeoutMs = t.callTimeoutMs ?? AWS_CALL_TIMEOUT_MS;
  /** Runs one SDK call with an abort deadline; the SDK's own retries happen inside it. */
  const bounded = async <T>(step: string, fn: (signal: AbortSignal) => Promise<T>): Promise<T> => {
    const ctl = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        ctl.abort();
        reject(
          new TunnelError(
            'AWS_TIMEOUT',
            `${step} did not answer within ${Math.round(timeoutMs / 100) / 10} s${endpoint ? ` (endpoint ${endpoint})` : ''}`,
            'check the network path to the SSM endpoint (VPN, proxy) and retry',
          ),
        );
      }, timeoutMs);
    });
    try {
      return await Promise.race([fn(ctl.signal), deadline]);
    } finally {
      clearTimeout(timer);
    }
  };
  const credentials = async (): Promise<AwsCredentials> => {
    try {
      const client = await getClient();
      return await bounded('resolving AWS credentials', () => client.config.credentials());
    } catch (e) {
      throw fixFor(e);
    }
  };
  return {
    loopbackEndpoint: endpoint ? isLoopbackHost(new URL(endpoint).hostname) : false,
    async startSession(target, documentName, parameters) {
      // The upgrade comes right after: its signer loads while StartSession is in flight.
      void loadSigner().catch(() => {});
      try {
        const [client, { StartSessionCommand }] = await Promise.all([getClient(), loadSdk()]);
        const out = await bounded('StartSession', (abortSignal) =>
          client.send(
            new StartSessionCommand({ Target: target, DocumentName: documentName, Parameters: parameters }),
            { abortSignal },
          ),
        );
        if (!out.SessionId || !out.TokenValue || !out.StreamUrl) {
          throw new TunnelError('AWS_ERROR', 'StartSession returned no SessionId, TokenValue or StreamUrl');
        }
        remember(out.StreamUrl);
        return { sessionId: out.SessionId, tokenValue: out.TokenValue, streamUrl: out.StreamUrl };
      } catch (e) {
        throw fixFor(e);
      }
    },
    async resumeSession(sessionId) {
      try {
        const [client, { ResumeSessionCommand }] = await Promise.all([getClient(), loadSdk()]);
        const out = await bounded('ResumeSession', (abortSignal) =>
          client.send(new ResumeSessionCommand({ SessionId: sessionId }), { abortSignal }),
        );
        if (!out.TokenValue) return undefined;
        return { sessionId, tokenValue: out.TokenValue, streamUrl: out.StreamUrl ?? '' };
      } catch (e) {
        if ((e as { name?: string }).name === 'DoesNotExistException') return undefined;
        throw fixFor(e);
      }
    },
    async terminateSession(sessionId) {
      try {
        const [client, { TerminateSessionCommand }] = await Promise.all([getClient(), loadSdk()]);
        await bounded('TerminateSession', (abortSignal) =>
          client.send(new TerminateSessionCommand({ SessionId: sessionId }), { abortSignal }),
        );
      } catch (e) {
        throw fixFor(e);
      }
    },
    async findInstancesByTag(key, value) {
      const ids: string[] = [];
      let next: string | undefined;
      try {
        const [client, { DescribeInstanceInformationCommand }] = await Promise.all([getClient(), loadSdk()]);
        do {
          const token = next;
          const out = await bounded('DescribeInstanceInformation', (abortSignal) =>
            client.send(
              new DescribeInstanceInformationCommand({
                Filters: [
                  { Key: `tag:${key}`, Values: [value] },
                  { Key: 'PingStatus', Values: ['Online'] },
                ],
                NextToken: token,
              }),
              { abortSignal },
            ),
          );
          for (const i of out.InstanceInformationList ?? []) {
            if (i.InstanceId && i.PingStatus === 'Online') ids.push(i.InstanceId);
          }
          next = out.NextToken;
        } while (next);
      } catch (e) {
        throw fixFor(e);
      }
      return ids;
    },
    credentials,
    async describeInstance(id) {
      try {
        const [client, { DescribeInstanceInformationCommand }] = await Promise.all([getClient(), loadSdk()]);
        const out = await bounded('DescribeInstanceInformation', (abortSignal) =>
          client.send(
            new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: [id] }] }),
            { abortSignal },
          ),
        );
        const i = out.InstanceInformationList?.find((x) => x.InstanceId === id);
        return i ? { pingStatus: i.PingStatus ?? 'Unknown', agentVersion: i.AgentVersion } : undefined;
      } catch (e) {
        throw fixFor(e);
      }
    },
    expectedStreamOrigin: () => expectedStreamOrigin(lastStreamOrigin, t.region, endpoint !== undefined),
    async signStreamUrl(streamUrl) {
      const url = new URL(streamUrl);
      if (PRESIGNED_KEYS.some((k) => url.searchParams.has(k))) return {};
      const [creds, [{ Sha256 }, { HttpRequest }, { SignatureV4 }]] = await Promise.all([
        credentials(),
        loadSigner(),
      ]);
      const signer = new SignatureV4({
        service: 'ssmmessages',
        region: t.region,
        credentials: creds,
        sha256: Sha256,
      });
      const query: Record<string, string> = {};
      for (const [k, v] of url.searchParams) query[k] = v;
      const signed = await signer.sign(
        new HttpRequest({
          method: 'GET',
          protocol: url.protocol === 'ws:' ? 'http:' : 'https:',
          hostname: url.hostname,
          port: url.port ? Number(url.port) : undefined,
          path: url.pathname,
          query,
          headers: { host: url.host },
        }),
      );
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(signed.headers))
        if (k.toLowerCase() !== 'host') headers[k] = String(v);
      return headers;
    },
    destroy() {
      void clientPromise?.then((c) => c.destroy());
    },
  };
}

/** Turns SDK and credential-provider failures into errors that say which command fixes them. */
export function classifyAwsError(
  e: unknown,
  profile?: string,
  where: { region?: string; endpoint?: string } = {},
): TunnelError {
  const { region, endpoint } = where;
  if (e instanceof TunnelError) return e;
  const err = e as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const name = err.name ?? 'Error';
  const message = err.message ?? String(e);
  const p = profile ? ` --profile ${profile}` : '';
  if (/sso/i.test(message) && /(expired|invalid|refresh|token)/i.test(message)) {
    return new TunnelError(
      'SSO_LOGIN_REQUIRED',
      `AWS SSO session expired: ${message}`,
      `run: aws sso login${p}`,
      {
        cause: e,
      },
    );
  }
  switch (name) {
    case 'CredentialsProviderError':
      return new TunnelError(
        'CREDENTIALS_MISSING',
        `no AWS credentials found${profile ? ` for profile ${profile}` : ''}: ${message}`,
        profile
          ? `check ~/.aws/config has [profile ${profile}], or run: aws sso login${p}`
          : 'set a profile in the tunnel config, or export AWS credentials',
        { cause: e },
      );
    case 'ExpiredTokenException':
    case 'ExpiredToken':
    case 'RequestExpired':
    case 'TokenRefreshRequired':
      return new TunnelError(
        'CREDENTIALS_EXPIRED',
        `AWS credentials expired: ${message}`,
        `refresh them, e.g. aws sso login${p}`,
        {
          cause: e,
        },
      );
    case 'UnrecognizedClientException':
    case 'InvalidSignatureException':
    case 'InvalidClientTokenId':
    case 'SignatureDoesNotMatch':
      return new TunnelError(
        'CREDENTIALS_INVALID',
        `AWS rejected the credentials${profile ? ` of profile ${profile}` : ''} (${name}): ${message}`,
        `the access key or secret is wrong or deleted: check them with aws sts get-caller-identity${p}, then fix ~/.aws/credentials or the profile's source`,
        { cause: e },
      );
    case 'AccessDeniedException':
      return new TunnelError(
        'ACCESS_DENIED',
        `${name}: ${message}`,
        'the IAM identity needs ssm:StartSession on the target and document, and ssmmessages:OpenDataChannel',
        { cause: e },
      );
    case 'TargetNotConnected':
      return new TunnelError(
        'TARGET_NOT_CONNECTED',
        `${name}: ${message}`,
        'check the instance is running and its SSM agent is online (Fleet Manager)',
        { cause: e },
      );
    case 'InvalidDocument':
      return new TunnelError('INVALID_DOCUMENT', `${name}: ${message}`, undefined, { cause: e });
    case 'ThrottlingException':
      return new TunnelError('THROTTLED', `${name}: ${message}`, 'retry in a moment', { cause: e });
    default: {
      const code = (e as { code?: string }).code ?? '';
      if (
        ['ENOTFOUND', 'ECONNREFUSED', 'ETIMEDOUT', 'EAI_AGAIN', 'ECONNRESET', 'EHOSTUNREACH'].includes(
          code,
        ) ||
        name === 'TimeoutError'
      ) {
        return new TunnelError(
          'ENDPOINT_UNREACHABLE',
          `the SSM endpoint${endpoint ? ` ${endpoint}` : ''}${region ? ` (region ${region})` : ''} cannot be reached: ${code || name}: ${message}`,
          "check the network and the tunnel's region, endpoint (or AWS_ENDPOINT_URL_SSM) and any HTTPS proxy settings",
          { cause: e },
        );
      }
      return new TunnelError('AWS_ERROR', `${name}: ${message}`, undefined, { cause: e });
    }
  }
}
