import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Sha256 } from '@aws-crypto/sha256-js';
import {
  AccessDeniedException,
  DescribeInstanceInformationCommand,
  DoesNotExistException,
  GetConnectionStatusCommand,
  InvalidDocument,
  InvalidFilterKey,
  InvalidInstanceInformationFilterValue,
  InvalidNextToken,
  InvalidParameters,
  paginateDescribeInstanceInformation,
  ResumeSessionCommand,
  SSMClient,
  type SSMClientConfig,
  SSMServiceException,
  StartSessionCommand,
  TargetNotConnected,
  TerminateSessionCommand,
  ThrottlingException,
  ValidationException,
} from '@aws-sdk/client-ssm';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SessionRegistry, type SimInstance, type SimSession } from '../../src/sim/sessions.js';
import { type SimCredential, SsmApi, verifySigV4 } from '../../src/sim/ssm-api.js';

const REGION = 'us-east-1';
const GOOD: SimCredential = { accessKeyId: 'AKIASIMGOOD000000001', secretAccessKey: 'good-secret' };
const TEMP: SimCredential = {
  accessKeyId: 'ASIASIMTEMP000000002',
  secretAccessKey: 'temp-secret',
  sessionToken: 'temp-session-token',
};
const EXPIRED: SimCredential = {
  accessKeyId: 'ASIASIMEXPIRED000003',
  secretAccessKey: 'expired-secret',
  sessionToken: 'expired-token',
  expired: true,
};

const DB = 'i-0aaaaaaaaaaaaaaa1';
const LOST = 'i-0bbbbbbbbbbbbbbb2';

function makeInstances(): SimInstance[] {
  const base: SimInstance[] = [
    {
      id: DB,
      tags: { Name: 'bastion-a', role: 'bastion', env: 'prod' },
      pingStatus: 'Online',
      agentVersion: '3.3.1611.0',
    },
    {
      id: LOST,
      tags: { Name: 'bastion-b', role: 'bastion', env: 'prod' },
      pingStatus: 'ConnectionLost',
      agentVersion: '3.3.1611.0',
    },
  ];
  for (let n = 0; n < 7; n++) {
    base.push({
      id: `i-0ccccccccccccccc${n}`,
      tags: { Name: `worker-${n}`, role: 'worker', env: n % 2 === 0 ? 'dev' : 'prod' },
      pingStatus: 'Online',
      agentVersion: '3.2.582.0',
    });
  }
  return base;
}

let server: http.Server;
let port: number;
let endpoint: string;
let registry: SessionRegistry;
let instances: SimInstance[];
let api: SsmApi;
let api404 = 0;
const clients: SSMClient[] = [];

function client(credentials: SimCredential = GOOD, extra: Partial<SSMClientConfig> = {}): SSMClient {
  const c = new SSMClient({
    endpoint,
    region: REGION,
    credentials: {
      accessKeyId: credentials.accessKeyId,
      secretAccessKey: credentials.secretAccessKey,
      ...(credentials.sessionToken ? { sessionToken: credentials.sessionToken } : {}),
    },
    maxAttempts: 1,
    ...extra,
  });
  clients.push(c);
  return c;
}

async function rejection(p: Promise<unknown>): Promise<SSMServiceException> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(SSMServiceException);
    return err as SSMServiceException;
  }
  throw new Error('expected the call to fail');
}

function startPort(c: SSMClient, target = DB, portNumber = '5432') {
  return c.send(
    new StartSessionCommand({
      Target: target,
      DocumentName: 'AWS-StartPortForwardingSession',
      Parameters: { portNumber: [portNumber], localPortNumber: ['0'] },
    }),
  );
}

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** Sends exactly these bytes and headers, so tests can hand the server what the SDK never would. */
function rawRequest(opts: {
  method?: string;
  path?: string;
  headers: Record<string, string>;
  body?: string | Buffer;
}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: opts.method ?? 'POST',
        path: opts.path ?? '/',
        headers: opts.headers,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (opts.body !== undefined) req.end(opts.body);
    else req.end();
  });
}

async function signHeaders(
  req: {
    method: string;
    path: string;
    query?: Record<string, string>;
    headers: Record<string, string>;
    body: string;
  },
  opts: { service: string; credentials?: SimCredential; date?: Date; region?: string },
): Promise<Record<string, string>> {
  const creds = opts.credentials ?? GOOD;
  const signer = new SignatureV4({
    service: opts.service,
    region: opts.region ?? REGION,
    credentials: {
      accessKeyId: creds.accessKeyId,
      secretAccessKey: creds.secretAccessKey,
      ...(creds.sessionToken ? { sessionToken: creds.sessionToken } : {}),
    },
    sha256: Sha256,
  });
  const signed = await signer.sign(
    new HttpRequest({
      method: req.method,
      protocol: 'http:',
      hostname: '127.0.0.1',
      port,
      path: req.path,
      query: req.query ?? {},
      headers: { host: `127.0.0.1:${port}`, ...req.headers },
      body: req.body,
    }),
    { signingDate: opts.date ?? new Date() },
  );
  return signed.headers as Record<string, string>;
}

/** A correctly signed SSM JSON 1.1 POST with an arbitrary body and target. */
async function signedSsmPost(body: string, target?: string): Promise<RawResponse> {
  const headers: Record<string, string> = { 'content-type': 'application/x-amz-json-1.1' };
  if (target !== undefined) headers['x-amz-target'] = target;
  const signed = await signHeaders({ method: 'POST', path: '/', headers, body }, { service: 'ssm' });
  return rawRequest({ headers: { ...signed, 'content-length': String(Buffer.byteLength(body)) }, body });
}

beforeAll(async () => {
  server = http.createServer((req, res) => {
    if (!api.handle(req, res)) {
      api404++;
      res.statusCode = 404;
      res.end('not found');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  endpoint = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  registry = new SessionRegistry();
  instances = makeInstances();
  api = new SsmApi({
    registry,
    instances,
    region: REGION,
    credentials: [GOOD, TEMP, EXPIRED],
    streamUrl: (id) => `ws://127.0.0.1:${port}/v1/data-channel/${id}?role=publish_subscribe`,
  });
});

afterEach(() => {
  for (const c of clients.splice(0)) c.destroy();
});

describe('SessionRegistry', () => {
  it('creates sessions with <user>-<17 hex> ids and announces them', () => {
    const reg = new SessionRegistry({ now: () => 1_000 });
    const started: SimSession[] = [];
    reg.on('started', (s) => started.push(s));
    const s = reg.create(DB, 'AWS-StartPortForwardingSession', { portNumber: ['5432'] });
    expect(s.sessionId).toMatch(/^ssmtun-[0-9a-f]{17}$/);
    expect(s).toMatchObject({ target: DB, status: 'Connected', createdAt: 1_000 });
    expect(started).toEqual([s]);
    expect(reg.get(s.sessionId)).toBe(s);
    expect(reg.list()).toEqual([s]);
    expect(new SessionRegistry({ sessionIdPrefix: 'alice' }).create(DB, 'd', {}).sessionId).toMatch(
      /^alice-/,
    );
  });

  it('accepts each client token exactly once, for its own live session only', () => {
    const reg = new SessionRegistry();
    const a = reg.create(DB, 'AWS-StartPortForwardingSession', {});
    const b = reg.create(DB, 'AWS-StartPortForwardingSession', {});
    const resumed: string[] = [];
    reg.on('resumed', (s) => resumed.push(s.sessionId));
    const t1 = reg.issueClientToken(a.sessionId);
    const t2 = reg.issueClientToken(a.sessionId);
    expect(t1).toMatch(/^[A-Za-z0-9_-]{32,}$/);
    expect(t2).not.toBe(t1);
    expect(resumed).toEqual([a.sessionId]);

    expect(reg.consumeClientToken(b.sessionId, t1)).toBe(false);
    expect(reg.consumeClientToken('ssmtun-00000000000000000', t1)).toBe(false);
    expect(reg.consumeClientToken(a.sessionId, 'forged')).toBe(false);
    expect(reg.consumeClientToken(a.sessionId, t1)).toBe(true);
    expect(reg.consumeClientToken(a.sessionId, t1)).toBe(false);

    const terminated: string[] = [];
    reg.on('terminated', (s, why) => terminated.push(`${s.sessionId}:${why}`));
    expect(reg.terminate(a.sessionId, 'test')).toBe(true);
    expect(reg.terminate(a.sessionId, 'again')).toBe(false);
    expect(terminated).toEqual([`${a.sessionId}:test`]);
    expect(reg.get(a.sessionId)).toMatchObject({ status: 'Terminated', terminateReason: 'test' });
    // The still-unused second token dies with the session.
    expect(reg.consumeClientToken(a.sessionId, t2)).toBe(false);
    expect(() => reg.issueClientToken(a.sessionId)).toThrow(/terminated/);
    expect(() => reg.issueClientToken('nope')).toThrow(/unknown/);
    expect(reg.terminate('nope', 'x')).toBe(false);
  });
});

describe('SsmApi with the real SSMClient', () => {
  it('StartSession → ResumeSession → TerminateSession, each with SDK-typed results', async () => {
    const c = client();
    const started: SimSession[] = [];
    registry.on('started', (s) => started.push(s));

    const start = await c.send(
      new StartSessionCommand({
        Target: DB,
        DocumentName: 'AWS-StartPortForwardingSessionToRemoteHost',
        Parameters: { host: ['db.internal'], portNumber: ['5432'] },
        Reason: 'tests',
      }),
    );
    expect(start.$metadata.httpStatusCode).toBe(200);
    expect(start.$metadata.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(start.SessionId).toMatch(/^ssmtun-[0-9a-f]{17}$/);
    expect(start.StreamUrl).toBe(
      `ws://127.0.0.1:${port}/v1/data-channel/${start.SessionId}?role=publish_subscribe`,
    );
    expect(start.TokenValue?.length).toBeGreaterThanOrEqual(32);
    const id = start.SessionId!;
    expect(started.map((s) => s.sessionId)).toEqual([id]);
    // Defaults from the document are filled in, as the agent would see them.
    expect(registry.get(id)).toMatchObject({
      target: DB,
      documentName: 'AWS-StartPortForwardingSessionToRemoteHost',
      parameters: { host: ['db.internal'], portNumber: ['5432'], localPortNumber: ['0'] },
      reason: 'tests',
      owner: GOOD.accessKeyId,
      status: 'Connected',
    });

    const r1 = await c.send(new ResumeSessionCommand({ SessionId: id }));
    const r2 = await c.send(new ResumeSessionCommand({ SessionId: id }));
    expect(r1.SessionId).toBe(id);
    expect(r1.StreamUrl).toBe(start.StreamUrl);
    const tokens = new Set([start.TokenValue, r1.TokenValue, r2.TokenValue]);
    expect(tokens.size).toBe(3);
    for (const t of tokens) expect(registry.consumeClientToken(id, t!)).toBe(true);
    for (const t of tokens) expect(registry.consumeClientToken(id, t!)).toBe(false);

    const terminated: string[] = [];
    registry.on('terminated', (_s, why) => terminated.push(why));
    const term = await c.send(new TerminateSessionCommand({ SessionId: id }));
    expect(term.SessionId).toBe(id);
    await c.send(new TerminateSessionCommand({ SessionId: id }));
    expect(terminated).toEqual(['TerminateSession API']);
    expect(registry.get(id)?.status).toBe('Terminated');

    // A terminated session resumes without a token: the plugin's "timed out" signal.
    const dead = await c.send(new ResumeSessionCommand({ SessionId: id }));
    expect(dead.$metadata.httpStatusCode).toBe(200);
    expect(dead.SessionId).toBe(id);
    expect(dead.TokenValue).toBeUndefined();

    // Terminating an id that never existed succeeds, as on AWS.
    const ghost = await c.send(new TerminateSessionCommand({ SessionId: 'ssmtun-00000000000000000' }));
    expect(ghost.SessionId).toBe('ssmtun-00000000000000000');

    expect(api.calls.map((x) => x.op)).toEqual([
      'StartSession',
      'ResumeSession',
      'ResumeSession',
      'TerminateSession',
      'TerminateSession',
      'ResumeSession',
      'TerminateSession',
    ]);
    expect(api.calls.every((x) => x.error === undefined && x.accessKeyId === GOOD.accessKeyId)).toBe(true);
    expect(api.calls[0]).toMatchObject({ target: DB, sessionId: id });
  });

  it('answers unknown sessions and bad targets/documents/parameters with typed exceptions', async () => {
    const c = client();
    const dne = await rejection(c.send(new ResumeSessionCommand({ SessionId: 'ssmtun-00000000000000000' })));
    expect(dne).toBeInstanceOf(DoesNotExistException);
    expect(dne.$metadata.httpStatusCode).toBe(400);

    const unknown = await rejection(startPort(c, 'i-0deadbeefdeadbeef'));
    expect(unknown).toBeInstanceOf(TargetNotConnected);
    expect(unknown.message).toBe('i-0deadbeefdeadbeef is not connected.');
    expect(unknown.$metadata.httpStatusCode).toBe(400);

    const lost = await rejection(startPort(c, LOST));
    expect(lost).toBeInstanceOf(TargetNotConnected);

    const badDoc = await rejection(
      c.send(new StartSessionCommand({ Target: DB, DocumentName: 'AWS-RunShellScript' })),
    );
    expect(badDoc).toBeInstanceOf(InvalidDocument);
    const shell = await rejection(c.send(new StartSessionCommand({ Target: DB })));
    expect(shell).toBeInstanceOf(InvalidDocument);

    const noHost = await rejection(
      c.send(
        new StartSessionCommand({
          Target: DB,
          DocumentName: 'AWS-StartPortForwardingSessionToRemoteHost',
          Parameters: { portNumber: ['5432'] },
        }),
      ),
    );
    expect(noHost).toBeInstanceOf(InvalidParameters);
    expect(noHost.message).toMatch(/host/);
    expect(await rejection(startPort(c, DB, 'http'))).toBeInstanceOf(InvalidParameters);
    const extra = await rejection(
      c.send(
        new StartSessionCommand({
          Target: DB,
          DocumentName: 'AWS-StartSSHSession',
          Parameters: { portNumber: ['22'], command: ['ls'] },
        }),
      ),
    );
    expect(extra).toBeInstanceOf(InvalidParameters);

    expect(registry.list()).toEqual([]);
    expect(api.calls.map((x) => x.error)).toEqual([
      'DoesNotExistException',
      'TargetNotConnected',
      'TargetNotConnected',
      'InvalidDocument',
      'InvalidDocument',
      'InvalidParameters',
      'InvalidParameters',
      'InvalidParameters',
    ]);
  });

  it('injects per-target errors into StartSession and ResumeSession, and clears them', async () => {
    const c = client();
    const live = await startPort(c);

    api.setTargetError(DB, 'AccessDeniedException');
    const denied = await rejection(startPort(c));
    expect(denied).toBeInstanceOf(AccessDeniedException);
    expect(denied.message).toMatch(/not authorized to perform: ssm:StartSession/);
    expect(await rejection(c.send(new ResumeSessionCommand({ SessionId: live.SessionId })))).toBeInstanceOf(
      AccessDeniedException,
    );

    api.setTargetError(DB, 'ThrottlingException');
    const throttled = await rejection(startPort(c));
    expect(throttled).toBeInstanceOf(ThrottlingException);
    expect(throttled.$metadata.httpStatusCode).toBe(400);
    expect(throttled.$metadata.attempts).toBe(1);

    api.setTargetError(DB, 'InvalidDocument');
    expect(await rejection(startPort(c))).toBeInstanceOf(InvalidDocument);
    api.setTargetError(DB, 'TargetNotConnected');
    expect(await rejection(startPort(c))).toBeInstanceOf(TargetNotConnected);
    api.setTargetError(DB, 'ExpiredTokenException');
    const expired = await rejection(startPort(c));
    expect(expired.name).toBe('ExpiredTokenException');

    // Other targets are unaffected.
    await startPort(c, 'i-0ccccccccccccccc0');

    api.setTargetError(DB, undefined);
    const ok = await c.send(new ResumeSessionCommand({ SessionId: live.SessionId }));
    expect(ok.TokenValue).toBeTruthy();
    expect(registry.list()).toHaveLength(2);
  });

  it('refuses bad signatures, unknown keys, expired and mismatched credentials without side effects', async () => {
    const wrongSecret = await rejection(startPort(client({ ...GOOD, secretAccessKey: 'not-the-secret' })));
    expect(wrongSecret.name).toBe('InvalidSignatureException');
    expect(wrongSecret.message).toMatch(/signature we calculated does not match/);
    expect(wrongSecret.$metadata.httpStatusCode).toBe(400);

    const unknown = await rejection(
      startPort(client({ accessKeyId: 'AKIANOBODY0000000000', secretAccessKey: 'x' })),
    );
    expect(unknown.name).toBe('UnrecognizedClientException');

    const expired = await rejection(startPort(client(EXPIRED)));
    expect(expired.name).toBe('ExpiredTokenException');
    expect(expired.$metadata.httpStatusCode).toBe(400);

    const badToken = await rejection(startPort(client({ ...TEMP, sessionToken: 'stolen' })));
    expect(badToken.name).toBe('UnrecognizedClientException');
    const missingToken = await rejection(
      startPort(client({ accessKeyId: TEMP.accessKeyId, secretAccessKey: TEMP.secretAccessKey })),
    );
    expect(missingToken.name).toBe('UnrecognizedClientException');

    expect(registry.list()).toEqual([]);
    expect(api.calls.map((x) => [x.op, x.error, x.sessionId])).toEqual([
      ['StartSession', 'InvalidSignatureException', undefined],
      ['StartSession', 'UnrecognizedClientException', undefined],
      ['StartSession', 'ExpiredTokenException', undefined],
      ['StartSession', 'UnrecognizedClientException', undefined],
      ['StartSession', 'UnrecognizedClientException', undefined],
    ]);

    const temp = await startPort(client(TEMP));
    expect(registry.get(temp.SessionId!)?.owner).toBe(TEMP.accessKeyId);
  });

  it('rejects signatures more than 15 minutes off; the SDK then corrects its clock from Date', async () => {
    const c = client(GOOD, { systemClockOffset: -20 * 60 * 1000 });
    const skewed = await rejection(startPort(c));
    expect(skewed.name).toBe('InvalidSignatureException');
    expect(skewed.message).toMatch(/^Signature expired: \d{8}T\d{6}Z is now earlier than/);
    expect(registry.list()).toEqual([]);
    // The SDK's own skew correction uses our Date header, so the retry goes through.
    const ok = await startPort(c);
    expect(ok.SessionId).toBeTruthy();
  });

  it('DescribeInstanceInformation filters by tag, id and PingStatus and paginates', async () => {
    const c = client();
    const all = await c.send(new DescribeInstanceInformationCommand({}));
    expect(all.InstanceInformationList).toHaveLength(9);
    expect(all.NextToken).toBeUndefined();
    const first = all.InstanceInformationList![0];
    expect(first).toMatchObject({
      InstanceId: DB,
      PingStatus: 'Online',
      AgentVersion: '3.3.1611.0',
      PlatformType: 'Linux',
      ResourceType: 'EC2Instance',
      ComputerName: 'bastion-a',
    });
    expect(first.LastPingDateTime).toBeInstanceOf(Date);

    const bastions = await c.send(
      new DescribeInstanceInformationCommand({ Filters: [{ Key: 'tag:role', Values: ['bastion'] }] }),
    );
    expect(bastions.InstanceInformationList?.map((i) => i.InstanceId)).toEqual([DB, LOST]);

    const onlineBastions = await c.send(
      new DescribeInstanceInformationCommand({
        Filters: [
          { Key: 'tag:role', Values: ['bastion'] },
          { Key: 'PingStatus', Values: ['Online'] },
        ],
      }),
    );
    expect(onlineBastions.InstanceInformationList?.map((i) => i.InstanceId)).toEqual([DB]);

    const prodWorkers = await c.send(
      new DescribeInstanceInformationCommand({
        Filters: [
          { Key: 'tag:role', Values: ['worker'] },
          { Key: 'tag:env', Values: ['prod', 'staging'] },
        ],
      }),
    );
    expect(prodWorkers.InstanceInformationList?.map((i) => i.InstanceId)).toEqual([
      'i-0ccccccccccccccc1',
      'i-0ccccccccccccccc3',
      'i-0ccccccccccccccc5',
    ]);

    const byId = await c.send(
      new DescribeInstanceInformationCommand({
        InstanceInformationFilterList: [{ key: 'InstanceIds', valueSet: [LOST, 'i-0nothere'] }],
      }),
    );
    expect(byId.InstanceInformationList?.map((i) => [i.InstanceId, i.PingStatus])).toEqual([
      [LOST, 'ConnectionLost'],
    ]);
    const byIdFilter = await c.send(
      new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: [DB] }] }),
    );
    expect(byIdFilter.InstanceInformationList?.map((i) => i.InstanceId)).toEqual([DB]);

    // Flipping the sim's own list is visible on the next call.
    instances[0].pingStatus = 'ConnectionLost';
    const none = await c.send(
      new DescribeInstanceInformationCommand({
        Filters: [
          { Key: 'tag:Name', Values: ['bastion-a'] },
          { Key: 'PingStatus', Values: ['Online'] },
        ],
      }),
    );
    expect(none.InstanceInformationList).toEqual([]);

    const pages: string[][] = [];
    for await (const page of paginateDescribeInstanceInformation({ client: c, pageSize: 5 }, {})) {
      pages.push(page.InstanceInformationList!.map((i) => i.InstanceId!));
    }
    expect(pages.map((p) => p.length)).toEqual([5, 4]);
    expect(pages.flat()).toEqual(instances.map((i) => i.id));
  });

  it('DescribeInstanceInformation rejects bad filters, page sizes and tokens with typed exceptions', async () => {
    const c = client();
    expect(
      await rejection(
        c.send(new DescribeInstanceInformationCommand({ Filters: [{ Key: 'Colour', Values: ['x'] }] })),
      ),
    ).toBeInstanceOf(InvalidFilterKey);
    expect(
      await rejection(
        c.send(
          new DescribeInstanceInformationCommand({ Filters: [{ Key: 'PingStatus', Values: ['Sleeping'] }] }),
        ),
      ),
    ).toBeInstanceOf(InvalidInstanceInformationFilterValue);
    expect(await rejection(c.send(new DescribeInstanceInformationCommand({ MaxResults: 2 })))).toBeInstanceOf(
      ValidationException,
    );
    expect(
      await rejection(c.send(new DescribeInstanceInformationCommand({ NextToken: 'garbage' }))),
    ).toBeInstanceOf(InvalidNextToken);
  });

  it('GetConnectionStatus reflects PingStatus', async () => {
    const c = client();
    expect((await c.send(new GetConnectionStatusCommand({ Target: DB }))).Status).toBe('connected');
    expect((await c.send(new GetConnectionStatusCommand({ Target: LOST }))).Status).toBe('notconnected');
  });
});

describe('SsmApi with hand-made requests', () => {
  function parseError(r: RawResponse): { type: string; message: string } {
    expect(r.headers['content-type']).toBe('application/x-amz-json-1.1');
    const body = JSON.parse(r.body) as { __type: string; message: string };
    expect(r.headers['x-amzn-errortype']).toBe(body.__type);
    return { type: body.__type, message: body.message };
  }

  it('answers malformed calls with AWS-shaped errors and keeps serving', async () => {
    const badJson = await signedSsmPost('{"Target": ', 'AmazonSSM.StartSession');
    expect(badJson.status).toBe(400);
    expect(parseError(badJson).type).toBe('SerializationException');

    const notObject = await signedSsmPost('[1,2]', 'AmazonSSM.StartSession');
    expect(parseError(notObject).type).toBe('SerializationException');

    const badParams = await signedSsmPost(
      JSON.stringify({
        Target: DB,
        DocumentName: 'AWS-StartPortForwardingSession',
        Parameters: { portNumber: '5432' },
      }),
      'AmazonSSM.StartSession',
    );
    expect(parseError(badParams).type).toBe('ValidationException');

    const noTarget = await signedSsmPost('{}');
    expect(noTarget.status).toBe(400);
    expect(parseError(noTarget).type).toBe('UnknownOperationException');

    const unknownOp = await signedSsmPost('{}', 'AmazonSSM.SendCommand');
    expect(parseError(unknownOp).type).toBe('UnknownOperationException');

    const unsigned = await rawRequest({
      headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'AmazonSSM.StartSession' },
      body: JSON.stringify({ Target: DB }),
    });
    expect(unsigned.status).toBe(400);
    expect(parseError(unsigned).type).toBe('MissingAuthenticationTokenException');

    const garbageAuth = await rawRequest({
      headers: {
        'content-type': 'application/x-amz-json-1.1',
        'x-amz-target': 'AmazonSSM.StartSession',
        authorization: 'AWS4-HMAC-SHA256 nonsense',
        'x-amz-date': '20990101T000000Z',
      },
      body: '{}',
    });
    expect(parseError(garbageAuth).type).toBe('IncompleteSignatureException');

    // Body swapped after signing: the payload hash no longer matches.
    const body = JSON.stringify({ Target: DB, DocumentName: 'AWS-StartPortForwardingSession' });
    const signed = await signHeaders(
      {
        method: 'POST',
        path: '/',
        headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'AmazonSSM.StartSession' },
        body,
      },
      { service: 'ssm' },
    );
    const tampered = body.replace(DB, LOST);
    const swapped = await rawRequest({
      headers: { ...signed, 'content-length': String(tampered.length) },
      body: tampered,
    });
    expect(parseError(swapped).type).toBe('InvalidSignatureException');

    const tooBig = await rawRequest({
      headers: {
        'content-type': 'application/x-amz-json-1.1',
        'x-amz-target': 'AmazonSSM.StartSession',
        'content-length': String(2 * 1024 * 1024),
      },
      body: '{',
    }).catch((err: unknown) => err as Error);
    expect(tooBig).toMatchObject({ status: 413 });

    const chunkedTooBig = await new Promise<number>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: '/',
          agent: false,
          headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'AmazonSSM.StartSession' },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      // The server may hang up while we are still writing; only the status matters.
      req.on('error', () => resolve(-1));
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      let sent = 0;
      const pump = () => {
        while (sent < 2 * 1024 * 1024) {
          sent += chunk.length;
          if (!req.write(chunk)) {
            req.once('drain', pump);
            return;
          }
        }
        req.end();
      };
      pump();
      setTimeout(() => reject(new Error('no answer to an oversized chunked body')), 10_000).unref();
    });
    expect([413, -1]).toContain(chunkedTooBig);

    // Not an SSM call at all: left for the shared server's other routes.
    const before = api404;
    const other = await rawRequest({ method: 'GET', path: '/v1/data-channel/x', headers: {} });
    expect(other.status).toBe(404);
    const otherPost = await rawRequest({
      path: '/v1/data-channel/x',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(otherPost.status).toBe(404);
    expect(api404).toBe(before + 2);

    expect(registry.list()).toEqual([]);
    const ok = await startPort(client());
    expect(registry.get(ok.SessionId!)).toBeDefined();
  });
});

describe('verifySigV4 for signed WebSocket upgrades (service ssmmessages)', () => {
  const path = '/v1/data-channel/ssmtun-0a1b2c3d4e5f6a7b8';
  const query = { role: 'publish_subscribe' };
  const url = `${path}?role=publish_subscribe`;
  const baseHeaders = { 'x-amz-user-agent': 'ssmtun-test' };

  async function upgradeRequest(credentials: SimCredential = GOOD, date?: Date) {
    const headers = await signHeaders(
      { method: 'GET', path, query, headers: baseHeaders, body: '' },
      { service: 'ssmmessages', credentials, ...(date ? { date } : {}) },
    );
    return {
      method: 'GET',
      url,
      // What the ws client adds on top; unsigned, so it must not matter.
      headers: {
        ...headers,
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
      } as http.IncomingHttpHeaders,
      body: Buffer.alloc(0),
    };
  }
  const opts = { service: 'ssmmessages', region: REGION, credentials: [GOOD, TEMP, EXPIRED] };

  it('accepts a request signed by SignatureV4', async () => {
    expect(await verifySigV4(await upgradeRequest(), opts)).toEqual({
      ok: true,
      accessKeyId: GOOD.accessKeyId,
    });
    expect(await verifySigV4(await upgradeRequest(TEMP), opts)).toEqual({
      ok: true,
      accessKeyId: TEMP.accessKeyId,
    });
  });

  it('rejects it when a signed header, the path or the query changes', async () => {
    const req = await upgradeRequest();
    const cases = [
      { ...req, headers: { ...req.headers, host: '127.0.0.1:1' } },
      { ...req, headers: { ...req.headers, 'x-amz-user-agent': 'someone-else' } },
      { ...req, url: `${path}?role=subscribe` },
      { ...req, url: `${path}?role=publish_subscribe&extra=1` },
      { ...req, url: path },
      { ...req, url: '/v1/data-channel/ssmtun-0000000000000000a?role=publish_subscribe' },
      { ...req, method: 'POST' },
      { ...req, body: Buffer.from('x') },
    ];
    for (const c of cases) {
      const r = await verifySigV4(c, opts);
      expect(r).toMatchObject({ ok: false, error: 'InvalidSignatureException' });
    }
  });

  it('rejects the wrong service or region, unknown keys, expired credentials and skew', async () => {
    const req = await upgradeRequest();
    expect(await verifySigV4(req, { ...opts, service: 'ssm' })).toMatchObject({
      ok: false,
      error: 'InvalidSignatureException',
      message: expect.stringMatching(/service/),
    });
    expect(await verifySigV4(req, { ...opts, region: 'eu-west-1' })).toMatchObject({
      error: 'InvalidSignatureException',
    });
    expect(await verifySigV4(req, { ...opts, credentials: [TEMP] })).toMatchObject({
      error: 'UnrecognizedClientException',
    });
    expect(await verifySigV4(await upgradeRequest(EXPIRED), opts)).toMatchObject({
      error: 'ExpiredTokenException',
    });
    const { authorization: _a, ...unsigned } = req.headers;
    expect(await verifySigV4({ ...req, headers: unsigned }, opts)).toMatchObject({
      error: 'MissingAuthenticationToken',
    });
    const old = await upgradeRequest(GOOD, new Date(Date.now() - 16 * 60 * 1000));
    expect(await verifySigV4(old, opts)).toMatchObject({ error: 'SignatureExpired' });
    const future = await upgradeRequest(GOOD, new Date(Date.now() + 16 * 60 * 1000));
    expect(await verifySigV4(future, opts)).toMatchObject({
      error: 'SignatureExpired',
      message: expect.stringMatching(/not yet current/),
    });
    // Within the window it is fine, judged against the caller-supplied clock.
    const slightlyOld = await upgradeRequest(GOOD, new Date(Date.now() - 10 * 60 * 1000));
    expect(await verifySigV4(slightlyOld, opts)).toMatchObject({ ok: true });
    expect(await verifySigV4(slightlyOld, { ...opts, now: Date.now() + 10 * 60 * 1000 })).toMatchObject({
      error: 'SignatureExpired',
    });
  });
});
