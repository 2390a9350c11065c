// The simulated gateway, driven only through its network interfaces: the real SSM SDK for the API,
// a raw `ws` client speaking the data-channel protocol, and the /_sim control endpoints.
import { randomUUID } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { Sha256 } from '@aws-crypto/sha256-js';
import {
  AccessDeniedException,
  ResumeSessionCommand,
  SSMClient,
  StartSessionCommand,
  TerminateSessionCommand,
} from '@aws-sdk/client-ssm';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { simCommand } from '../../src/cli/commands/sim.js';
import { answerHandshakeRequest, CLIENT_VERSION } from '../../src/protocol/handshake.js';
import {
  type DecodedMessage,
  decodeMessage,
  encodeFlag,
  encodeMessage,
  MessageType,
  PayloadFlag,
  PayloadType,
} from '../../src/protocol/message.js';
import {
  buildAcknowledge,
  buildHandshakeResponse,
  buildOpenDataChannel,
  parseChannelClosed,
  parseHandshakeRequest,
} from '../../src/protocol/payloads.js';
import { encodeSmuxHeader, SmuxCmd } from '../../src/protocol/smux.js';
import { CloseCode, type GatewaySessionStats } from '../../src/sim/gateway.js';
import { type Simulator, type SimulatorOptions, startSimulator } from '../../src/sim/index.js';
import { startEchoServer, type TcpServerHandle } from '../helpers/net.js';

const BASTION = 'i-05e1a000000000001';
const LEGACY = 'i-05e1a000000000002';

let echo: TcpServerHandle;
const sims: Simulator[] = [];
const sockets: WebSocket[] = [];

beforeAll(async () => {
  echo = await startEchoServer();
});

afterEach(async () => {
  for (const ws of sockets.splice(0)) ws.terminate();
  await Promise.all(sims.splice(0).map((s) => s.close()));
});

afterAll(async () => {
  await echo.close();
});

async function sim(opts: SimulatorOptions = {}): Promise<Simulator> {
  // Pacing only slows the tests down; the relay does not care.
  const s = await startSimulator({ agentDefaults: { pacing: false }, ...opts });
  sims.push(s);
  return s;
}

function ssm(s: Simulator): SSMClient {
  return new SSMClient({
    endpoint: s.endpoint,
    region: s.region,
    credentials: { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey },
    maxAttempts: 1,
  });
}

async function startSession(s: Simulator, target = BASTION) {
  const out = await ssm(s).send(
    new StartSessionCommand({
      Target: target,
      DocumentName: 'AWS-StartPortForwardingSession',
      Parameters: { portNumber: [String(echo.port)], localPortNumber: ['0'] },
    }),
  );
  return { sessionId: out.SessionId!, token: out.TokenValue!, streamUrl: out.StreamUrl! };
}

async function resume(s: Simulator, sessionId: string): Promise<string | undefined> {
  const out = await ssm(s).send(new ResumeSessionCommand({ SessionId: sessionId }));
  return out.TokenValue;
}

async function until<T>(what: string, fn: () => T | undefined | false, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function stats(s: Simulator, sessionId: string): GatewaySessionStats {
  return s.gateway.sessionStats(sessionId)!;
}

async function signedHeaders(
  s: Simulator,
  url: string,
  secret = s.secretAccessKey,
): Promise<Record<string, string>> {
  const u = new URL(url);
  const signer = new SignatureV4({
    service: 'ssmmessages',
    region: s.region,
    credentials: { accessKeyId: s.accessKeyId, secretAccessKey: secret },
    sha256: Sha256,
  });
  const signed = await signer.sign(
    new HttpRequest({
      method: 'GET',
      protocol: 'https:',
      hostname: u.hostname,
      port: Number(u.port),
      path: u.pathname,
      query: Object.fromEntries(u.searchParams),
      headers: { host: u.host },
    }),
  );
  const { host: _host, ...rest } = signed.headers as Record<string, string>;
  return rest;
}

/** A bare-bones data-channel client: acks, dedupes, answers the handshake, speaks smux by hand. */
class RawClient {
  readonly messages: DecodedMessage[] = [];
  readonly raw: Buffer[] = [];
  readonly outputs = new Map<number, DecodedMessage>();
  closed?: { code: number; reason: string };
  nextSeq = 0;
  private handshakeAnswered = false;

  constructor(
    readonly ws: WebSocket,
    private readonly autoHandshake: boolean,
  ) {
    ws.on('message', (data: Buffer) => this.onFrame(data));
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
    });
    ws.on('error', () => {});
  }

  static async open(
    url: string,
    token: string | undefined,
    opts: {
      headers?: Record<string, string>;
      autoHandshake?: boolean;
      nextSeq?: number;
      first?: string | Buffer;
    } = {},
  ): Promise<RawClient> {
    const ws = new WebSocket(url, { perMessageDeflate: false, headers: opts.headers });
    sockets.push(ws);
    const client = new RawClient(ws, opts.autoHandshake ?? true);
    if (opts.nextSeq !== undefined) client.nextSeq = opts.nextSeq;
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    const first =
      opts.first ??
      buildOpenDataChannel({
        MessageSchemaVersion: '1.0',
        RequestId: randomUUID(),
        TokenValue: token ?? '',
        ClientId: randomUUID(),
        ClientVersion: CLIENT_VERSION,
      });
    ws.send(first);
    return client;
  }

  private onFrame(data: Buffer): void {
    this.raw.push(data);
    const d = decodeMessage(data);
    if (!d.ok) return;
    const m = d.message;
    this.messages.push(m);
    if (m.messageType !== MessageType.OutputStreamData) return;
    this.send(
      encodeMessage({
        messageType: MessageType.Acknowledge,
        sequenceNumber: 0,
        flags: 3,
        payloadType: 0,
        payload: buildAcknowledge(m.messageType, m.messageId, m.sequenceNumber),
      }),
    );
    if (!this.outputs.has(m.sequenceNumber)) this.outputs.set(m.sequenceNumber, m);
    if (m.payloadType === PayloadType.HandshakeRequest && this.autoHandshake && !this.handshakeAnswered) {
      this.handshakeAnswered = true;
      const answer = answerHandshakeRequest(parseHandshakeRequest(m.payload)!);
      this.sendStream(PayloadType.HandshakeResponse, buildHandshakeResponse(answer.response));
    }
  }

  send(frame: Buffer): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(frame);
  }

  sendStream(payloadType: number, payload: Buffer): number {
    const seq = this.nextSeq++;
    this.send(
      encodeMessage({
        messageType: MessageType.InputStreamData,
        sequenceNumber: seq,
        flags: 0,
        payloadType,
        payload,
      }),
    );
    return seq;
  }

  /** The agent's Output bytes, deduplicated, in sequence order. */
  outputBytes(): Buffer {
    const seqs = [...this.outputs.keys()].sort((a, b) => a - b);
    return Buffer.concat(
      seqs
        .map((s) => this.outputs.get(s)!)
        .filter((m) => m.payloadType === PayloadType.Output)
        .map((m) => m.payload),
    );
  }

  has(type: string): boolean {
    return this.messages.some((m) => m.messageType === type);
  }

  handshakeDone(): boolean {
    return [...this.outputs.values()].some((m) => m.payloadType === PayloadType.HandshakeComplete);
  }

  channelClosed() {
    const m = this.messages.find((x) => x.messageType === MessageType.ChannelClosed);
    return m && parseChannelClosed(m.payload);
  }

  async waitClosed(timeoutMs = 5_000) {
    return until('socket close', () => this.closed, timeoutMs);
  }
}

const SID = 3;
function smuxSyn(): Buffer {
  return encodeSmuxHeader(SmuxCmd.SYN, 0, SID);
}
function smuxPsh(text: string): Buffer {
  const data = Buffer.from(text);
  return Buffer.concat([encodeSmuxHeader(SmuxCmd.PSH, data.length, SID), data]);
}

/** Opens smux stream 3 towards the echo server and waits for `text` to come back. */
async function echoThroughMux(c: RawClient, text: string, open = true): Promise<void> {
  if (open) c.sendStream(PayloadType.Output, smuxSyn());
  c.sendStream(PayloadType.Output, smuxPsh(text));
  await until(`echo of ${text}`, () => c.outputBytes().includes(text));
}

async function handshake(s: Simulator, target = BASTION) {
  const session = await startSession(s, target);
  const client = await RawClient.open(session.streamUrl, session.token);
  await until('HandshakeComplete', () => client.handshakeDone());
  return { ...session, client };
}

async function control(s: Simulator, method: string, path: string, body?: unknown) {
  const res = await fetch(`${s.endpoint}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('gateway relay', () => {
  it('queues the agent HandshakeRequest until the client connects and never relays agent_session_state', async () => {
    const s = await sim();
    const session = await startSession(s);
    expect(session.streamUrl).toBe(
      `ws://127.0.0.1:${s.port}/v1/data-channel/${session.sessionId}?role=publish_subscribe`,
    );
    // The agent is spawned by StartSession and gets there first.
    await until('agent frames queued', () => stats(s, session.sessionId).queuedForClient > 0);
    expect(stats(s, session.sessionId).agentConnects).toBe(1);
    expect(stats(s, session.sessionId).agentSessionState).toBe('Connected');

    const client = await RawClient.open(session.streamUrl, session.token);
    await until('HandshakeComplete', () => client.handshakeDone());
    const first = client.messages[0];
    expect(first.messageType).toBe(MessageType.OutputStreamData);
    expect(first.sequenceNumber).toBe(0);
    expect(first.payloadType).toBe(PayloadType.HandshakeRequest);
    expect(parseHandshakeRequest(first.payload)?.AgentVersion).toBe('3.3.987.0');

    await echoThroughMux(client, 'hello through the relay');
    expect(client.has(MessageType.AgentSessionState)).toBe(false);
    // Relayed byte for byte: every frame the client got decodes with its digest intact.
    expect(client.raw.every((f) => decodeMessage(f).ok)).toBe(true);

    const st = stats(s, session.sessionId);
    expect(st.agentSessionStates).toBe(1);
    expect(st.clientConnects).toBe(1);
    expect(st.lastClientVersion).toBe(CLIENT_VERSION);
    expect(st.framesAgentToClient).toBeGreaterThan(2);
    expect(st.framesClientToAgent).toBeGreaterThan(2);
    expect(st.waitingForClient).toBe(0);
    const agent = s.gateway.agentStats(session.sessionId) as { mode: string; violations: string[] };
    expect(agent.mode).toBe('mux');
    expect(agent.violations).toEqual([]);
  });

  it("gives each session's agent its instance's version", async () => {
    const s = await sim();
    const session = await startSession(s, LEGACY);
    const client = await RawClient.open(session.streamUrl, session.token);
    await until('HandshakeRequest', () => client.outputs.get(0));
    expect(parseHandshakeRequest(client.outputs.get(0)!.payload)?.AgentVersion).toBe('3.0.161.0');
  });

  it('closes sockets with a wrong, reused or missing token or an unknown session, leaving other sessions alone', async () => {
    const s = await sim();
    const a = await handshake(s);
    const b = await startSession(s);

    const wrong = await RawClient.open(b.streamUrl, 'not-a-token');
    expect((await wrong.waitClosed()).code).toBe(CloseCode.Unauthorized);

    const ok = await RawClient.open(b.streamUrl, b.token);
    await until('b handshake', () => ok.handshakeDone());
    const reused = await RawClient.open(b.streamUrl, b.token);
    expect((await reused.waitClosed()).code).toBe(CloseCode.Unauthorized);
    // The holder of the token is unaffected by the impostor.
    expect(ok.closed).toBeUndefined();

    // A token of session A does not open session B.
    const tokenA = await resume(s, a.sessionId);
    const crossed = await RawClient.open(b.streamUrl, tokenA);
    expect((await crossed.waitClosed()).code).toBe(CloseCode.Unauthorized);

    const missing = await RawClient.open(b.streamUrl, undefined, {
      first: JSON.stringify({ MessageSchemaVersion: '1.0', RequestId: randomUUID(), ClientId: randomUUID() }),
    });
    expect((await missing.waitClosed()).code).toBe(CloseCode.Unauthorized);

    const unknown = await RawClient.open(
      `ws://127.0.0.1:${s.port}/v1/data-channel/ssmtun-0123456789abcdef0?role=publish_subscribe`,
      'whatever',
    );
    expect((await unknown.waitClosed()).code).toBe(CloseCode.SessionNotFound);

    // An agent token can only be had through CreateDataChannel, so a client posing as agent fails too.
    const fakeAgent = await RawClient.open(b.streamUrl, undefined, {
      first: JSON.stringify({
        MessageSchemaVersion: '1.0',
        RequestId: randomUUID(),
        TokenValue: b.token,
        ClientId: randomUUID(),
        ClientInstanceId: BASTION,
      }),
    });
    expect((await fakeAgent.waitClosed()).code).toBe(CloseCode.Unauthorized);

    await echoThroughMux(a.client, 'A still works');
    await echoThroughMux(ok, 'B still works');
    expect(a.client.closed).toBeUndefined();
    const refusals = s.gateway.refusals.map((r) => r.code);
    expect(refusals.filter((c) => c === CloseCode.Unauthorized)).toHaveLength(5);
    expect(refusals).toContain(CloseCode.SessionNotFound);
  });

  it('refuses a binary or malformed first frame and a silent socket', async () => {
    const s = await sim({ openTimeoutMs: 200 });
    const session = await startSession(s);
    const binary = await RawClient.open(session.streamUrl, undefined, {
      first: Buffer.from('{"binary":true}'),
    });
    expect((await binary.waitClosed()).code).toBe(CloseCode.BadOpen);
    const garbage = await RawClient.open(session.streamUrl, undefined, { first: 'not json at all' });
    expect((await garbage.waitClosed()).code).toBe(CloseCode.BadOpen);

    const ws = new WebSocket(session.streamUrl, { perMessageDeflate: false });
    sockets.push(ws);
    const code = await new Promise<number>((resolve) => ws.on('close', (c) => resolve(c)));
    expect(code).toBe(CloseCode.OpenTimeout);

    // The token was never consumed by those attempts.
    const good = await RawClient.open(session.streamUrl, session.token);
    await until('handshake', () => good.handshakeDone());
  });

  it('requires a valid SigV4 upgrade when configured, and accepts unsigned ones otherwise', async () => {
    const strict = await sim({ requireSignedUpgrade: true });
    const s1 = await startSession(strict);
    await expect(RawClient.open(s1.streamUrl, s1.token)).rejects.toThrow('HTTP 403');
    const badHeaders = await signedHeaders(strict, s1.streamUrl, 'wrong-secret');
    await expect(RawClient.open(s1.streamUrl, s1.token, { headers: badHeaders })).rejects.toThrow('HTTP 403');
    const good = await RawClient.open(s1.streamUrl, s1.token, {
      headers: await signedHeaders(strict, s1.streamUrl),
    });
    await until('signed handshake', () => good.handshakeDone());
    expect(stats(strict, s1.sessionId).signedUpgrades).toBeGreaterThanOrEqual(2); // client and agent
    expect(strict.gateway.refusals.filter((r) => r.code === 403)).toHaveLength(2);

    const lax = await sim();
    const s2 = await startSession(lax);
    const bad = await signedHeaders(lax, s2.streamUrl, 'wrong-secret');
    await expect(RawClient.open(s2.streamUrl, s2.token, { headers: bad })).rejects.toThrow('HTTP 403');
    const unsigned = await RawClient.open(s2.streamUrl, s2.token);
    await until('unsigned handshake', () => unsigned.handshakeDone());
    expect(stats(lax, s2.sessionId).unsignedUpgrades).toBe(1);
  });

  it('sends channel_closed and closes the client on TerminateSession', async () => {
    const s = await sim();
    const { sessionId, client } = await handshake(s);
    await ssm(s).send(new TerminateSessionCommand({ SessionId: sessionId }));
    const closed = await client.waitClosed();
    expect(closed.code).toBe(CloseCode.SessionEnded);
    const cc = client.channelClosed();
    expect(cc?.Output).toBe('Session terminated by TerminateSession API');
    expect(cc?.SessionId).toBe(sessionId);
    expect(cc?.DestinationId).toBe(BASTION);
    const st = stats(s, sessionId);
    expect(st.channelClosedToClient).toBe(1);
    expect(st.channelClosedToAgent).toBe(1);
    expect(st.endReason).toBe('TerminateSession API');
    await until('agent ended', () => s.gateway.agent(sessionId)?.ended);
    expect(s.registry.get(sessionId)?.status).toBe('Terminated');
    // The session is gone: ResumeSession gives no token (the plugin's "timed out").
    expect(await resume(s, sessionId)).toBeUndefined();
  });

  it('tells the client when the agent ends the session', async () => {
    const s = await sim();
    const { sessionId, client } = await handshake(s);
    client.sendStream(PayloadType.Flag, encodeFlag(PayloadFlag.TerminateSession));
    await client.waitClosed();
    expect(client.channelClosed()?.Output).toMatch(/^agent ended the session: /);
    expect(s.registry.get(sessionId)?.terminateReason).toMatch(/^agent ended the session: /);
  });

  it('ends idle sessions and counts only stream data as activity', async () => {
    const s = await sim({ idleTimeoutMs: 700 });
    const { sessionId, client } = await handshake(s);
    const t0 = Date.now();
    client.sendStream(PayloadType.Output, smuxSyn());
    // Acks and pings are not activity; stream data is.
    await new Promise((r) => setTimeout(r, 400));
    await echoThroughMux(client, 'still here', false);
    const hs = client.outputs.get(0)!;
    const acking = setInterval(() => {
      client.send(
        encodeMessage({
          messageType: MessageType.Acknowledge,
          sequenceNumber: 0,
          flags: 3,
          payloadType: 0,
          payload: buildAcknowledge(hs.messageType, hs.messageId, 0),
        }),
      );
      client.ws.ping();
    }, 50);
    try {
      await new Promise((r) => setTimeout(r, 450));
      expect(client.closed).toBeUndefined();
      await client.waitClosed(3_000);
    } finally {
      clearInterval(acking);
    }
    expect(Date.now() - t0).toBeGreaterThan(800);
    expect(client.channelClosed()?.Output).toBe(
      'Your session timed out due to inactivity and has been terminated.',
    );
    expect(s.registry.get(sessionId)?.terminateReason).toBe('idle timeout');
  });

  it('ends sessions at the maximum duration', async () => {
    const s = await sim({ maxSessionDurationMs: 600 });
    const { client } = await handshake(s);
    await client.waitClosed();
    expect(client.channelClosed()?.Output).toMatch(/maximum session duration/);
  });

  it('recycles client sockets; ResumeSession reconnects to the same session and the agent carries on', async () => {
    const s = await sim({ recycleClientMs: 1_000 });
    const { sessionId, streamUrl, client } = await handshake(s);
    await echoThroughMux(client, 'before recycle');
    const lastSeq = Math.max(...client.outputs.keys());

    const closed = await client.waitClosed(3_000);
    // A plain TCP drop, no close frame.
    expect(closed.code).toBe(1006);
    await until('pause_publication', () => stats(s, sessionId).pausePublicationSent === 1);

    const token = await resume(s, sessionId);
    expect(token).toBeTruthy();
    const again = await RawClient.open(streamUrl, token, { nextSeq: client.nextSeq, autoHandshake: false });
    await echoThroughMux(again, 'after recycle', false);
    const seqs = [...again.outputs.keys()].sort((a, b) => a - b);
    // The agent's sequence continues where it was; no new handshake.
    expect(seqs[0]).toBeGreaterThan(lastSeq);
    expect([...again.outputs.values()].some((m) => m.payloadType === PayloadType.HandshakeRequest)).toBe(
      false,
    );
    const st = stats(s, sessionId);
    expect(st.clientConnects).toBe(2);
    expect(st.agentConnects).toBe(1);
    expect(st.startPublicationSent).toBe(1);
    expect(st.events).toContain('client socket recycled');
  });

  it('replaces an older client socket of the same session', async () => {
    const s = await sim();
    const { sessionId, streamUrl, client } = await handshake(s);
    const token = await resume(s, sessionId);
    const newer = await RawClient.open(streamUrl, token, { nextSeq: client.nextSeq, autoHandshake: false });
    expect((await client.waitClosed()).code).toBe(CloseCode.Replaced);
    await echoThroughMux(newer, 'on the newer socket');
  });

  it('survives garbage frames from a client', async () => {
    const s = await sim();
    const { sessionId, client } = await handshake(s);
    client.send(Buffer.alloc(0));
    client.send(Buffer.from('short'));
    client.send(Buffer.alloc(4096, 0xff));
    const corrupt = encodeMessage({
      messageType: MessageType.InputStreamData,
      sequenceNumber: 99,
      flags: 0,
      payloadType: 1,
      payload: Buffer.from('x'),
    });
    corrupt[120] ^= 0xff; // the first payload byte: breaks the digest
    client.send(corrupt);
    client.ws.send('a text frame after the open');
    await echoThroughMux(client, 'after the garbage');
    expect(s.gateway.violations.filter((v) => v.sessionId === sessionId).length).toBeGreaterThanOrEqual(2);
    expect(client.closed).toBeUndefined();
  });

  it('bounds the queue for an absent client, dropping the oldest frames', async () => {
    const s = await sim({ maxQueuedFrames: 2 });
    const session = await startSession(s);
    // The agent resends its unacked HandshakeRequest while no client is there to ack it.
    await until('queue overflows', () => stats(s, session.sessionId).queueDroppedForClient > 0);
    expect(stats(s, session.sessionId).waitingForClient).toBe(2);
    const client = await RawClient.open(session.streamUrl, session.token);
    await until('HandshakeComplete', () => client.handshakeDone());
    expect(stats(s, session.sessionId).waitingForClient).toBe(0);
  });
});

describe('/_sim control API', () => {
  it('reports state and kills sockets', async () => {
    const s = await sim();
    const { sessionId, client } = await handshake(s);
    await echoThroughMux(client, 'one');

    const state = await control(s, 'GET', '/_sim/state');
    expect(state.status).toBe(200);
    const sessions = state.body.sessions as Array<Record<string, unknown>>;
    const mine = sessions.find((x) => x.sessionId === sessionId)!;
    expect(mine.status).toBe('Connected');
    expect((mine.gateway as GatewaySessionStats).clientConnected).toBe(true);
    expect((mine.agent as { mode: string }).mode).toBe('mux');
    expect((state.body.calls as Array<{ op: string }>).map((c) => c.op)).toContain('StartSession');

    // Killing the agent's socket: it reconnects with a new CreateDataChannel and the session goes on.
    expect((await control(s, 'POST', '/_sim/kill', { sessionId, side: 'agent' })).body).toEqual({
      killed: true,
    });
    await until(
      'agent back',
      () => stats(s, sessionId).agentConnects === 2 && stats(s, sessionId).agentConnected,
    );
    client.sendStream(PayloadType.Output, smuxPsh('two'));
    await until('echo after agent kill', () => client.outputBytes().includes('two'));

    expect((await control(s, 'POST', '/_sim/kill', { sessionId, side: 'client' })).body).toEqual({
      killed: true,
    });
    expect((await client.waitClosed()).code).toBe(1006);
    const after = await control(s, 'GET', '/_sim/state');
    const g = (after.body.sessions as Array<{ sessionId: string; gateway: GatewaySessionStats }>).find(
      (x) => x.sessionId === sessionId,
    )!.gateway;
    expect(g.clientConnected).toBe(false);
    expect(g.pausePublicationSent).toBe(1);

    const unknown = await control(s, 'POST', '/_sim/kill', { sessionId: 'nope', side: 'agent' });
    expect(unknown).toEqual({ status: 404, body: { code: 'UnknownSession', message: 'no session nope' } });
    const badSide = await control(s, 'POST', '/_sim/kill', { sessionId, side: 'both' });
    expect(badSide.status).toBe(400);
    expect(badSide.body.code).toBe('BadRequest');
    expect((await control(s, 'GET', '/_sim/nothing')).body.code).toBe('NotFound');
    expect((await control(s, 'GET', '/_sim/kill')).body.code).toBe('MethodNotAllowed');
  });

  it('sets faults, target errors, instances, and terminates sessions', async () => {
    const s = await sim();
    const faults = await control(s, 'POST', '/_sim/faults', [{ direction: 'agent->client', dropSeqs: [1] }]);
    expect(faults.status).toBe(200);
    expect(s.faults.specs).toEqual([{ direction: 'agent->client', dropSeqs: [1] }]);
    const badFaults = await control(s, 'POST', '/_sim/faults', [{ direction: 'sideways' }]);
    expect(badFaults.status).toBe(400);

    // The dropped HandshakeComplete (agent seq 1) is retransmitted by the agent, so the handshake still completes.
    const { sessionId, client } = await handshake(s);
    expect(stats(s, sessionId).faultDroppedAgentToClient).toBe(1);
    await echoThroughMux(client, 'despite the drop');

    expect(
      (await control(s, 'POST', '/_sim/target-error', { target: BASTION, error: 'AccessDeniedException' }))
        .status,
    ).toBe(200);
    await expect(startSession(s)).rejects.toBeInstanceOf(AccessDeniedException);
    await control(s, 'POST', '/_sim/target-error', { target: BASTION, error: null });
    expect((await control(s, 'POST', '/_sim/target-error', { target: BASTION, error: 'Nope' })).status).toBe(
      400,
    );

    const added = await control(s, 'POST', '/_sim/instances', {
      id: 'i-0sim0000000000003',
      tags: { Name: 'extra' },
      agentVersion: '3.1.1000.0',
      agent: { completeBeforeAck: 1 },
    });
    expect(added.status).toBe(200);
    const extra = await handshake(s, 'i-0sim0000000000003');
    await echoThroughMux(extra.client, 'on the new instance');
    const req = extra.client.outputs.get(0)!;
    expect(parseHandshakeRequest(req.payload)?.AgentVersion).toBe('3.1.1000.0');

    const term = await control(s, 'POST', '/_sim/terminate', { sessionId: extra.sessionId });
    expect(term.body).toEqual({ terminated: true });
    await extra.client.waitClosed();
    expect(extra.client.channelClosed()?.Output).toBe(
      'Your session timed out due to inactivity and has been terminated.',
    );
    expect(client.closed).toBeUndefined();
  });
});

describe('ssmtun sim', () => {
  it('prints one JSON line, runs until told to stop, and exits 0', async () => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    stderr.resume();
    const ac = new AbortController();
    const done = simCommand(['--json', '--no-pacing', '--seed', '7'], { stdout, stderr, signal: ac.signal });
    const line = await new Promise<string>((resolve) => {
      let buf = '';
      stdout.on('data', (c: Buffer) => {
        buf += c.toString();
        const nl = buf.indexOf('\n');
        if (nl >= 0) resolve(buf.slice(0, nl));
      });
    });
    const info = JSON.parse(line) as {
      endpoint: string;
      region: string;
      accessKeyId: string;
      secretAccessKey: string;
      instances: { id: string; tags: Record<string, string> }[];
    };
    expect(info.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(info.instances).toEqual([
      { id: BASTION, tags: { Name: 'bastion' } },
      { id: LEGACY, tags: { Name: 'legacy' } },
    ]);
    const client = new SSMClient({
      endpoint: info.endpoint,
      region: info.region,
      credentials: { accessKeyId: info.accessKeyId, secretAccessKey: info.secretAccessKey },
      maxAttempts: 1,
    });
    const out = await client.send(
      new StartSessionCommand({
        Target: BASTION,
        DocumentName: 'AWS-StartPortForwardingSession',
        Parameters: { portNumber: [String(echo.port)] },
      }),
    );
    expect(out.StreamUrl).toContain(info.endpoint.replace('http', 'ws'));
    ac.abort();
    expect(await done).toBe(0);
  });

  it('rejects bad flags with exit code 2', async () => {
    const stderr = new PassThrough();
    let text = '';
    stderr.on('data', (c: Buffer) => {
      text += c.toString();
    });
    expect(await simCommand(['--bogus'], { stderr, stdout: new PassThrough() })).toBe(2);
    expect(await simCommand(['--port', 'abc'], { stderr, stdout: new PassThrough() })).toBe(2);
    expect(text).toContain('usage: ssmtun sim');
  });
});
