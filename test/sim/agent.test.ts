/**
 * SimAgent over real sockets. The gateway is someone else's, so a stand-in relay lives here: it answers
 * the agent's CreateDataChannel POST, accepts its WebSocket (both SigV4-verified), and lets the test play
 * the client with the protocol core (DataChannel + PortSession), or with raw frames where precise
 * control matters.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { DataChannel } from '../../src/protocol/data-channel.js';
import {
  type DecodedMessage,
  decodeFlag,
  decodeMessage,
  encodeMessage,
  HeaderFlags,
  MessageType,
  PayloadFlag,
  PayloadType,
} from '../../src/protocol/message.js';
import {
  buildAcknowledge,
  buildChannelClosed,
  buildHandshakeResponse,
  parseAcknowledge,
  parseHandshakeComplete,
  parseHandshakeRequest,
} from '../../src/protocol/payloads.js';
import { PortSession, type PortSessionInfo } from '../../src/protocol/port-session.js';
import { SmuxCmd } from '../../src/protocol/smux.js';
import { HANDSHAKE_TIMEOUT_REASON, SimAgent, type SimAgentOptions } from '../../src/sim/agent.js';
import { verifySigV4 } from '../../src/sim/sigv4.js';
import {
  closedPort,
  pseudoRandomBytes,
  startEchoServer,
  startSinkServer,
  startSourceServer,
} from '../helpers/net.js';

const REGION = 'eu-west-1';
const CREDS = { accessKeyId: 'AKIDSIMAGENTTEST', secretAccessKey: 'sim/agent/secret/key' };
const SESSION_ID = 'tester-0a1b2c3d4e5f67890';
const INSTANCE_ID = 'i-0123456789abcdef0';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond: () => boolean, what: string, timeoutMs = 8000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

// ---- stand-in relay --------------------------------------------------------------------------------

interface Relay {
  endpoint: string;
  posts: number;
  /** Answer the next N POSTs with HTTP 500. */
  failPosts: number;
  badSignatures: number;
  opens: Record<string, unknown>[];
  /** Every binary frame from the agent, decoded, in arrival order (retransmissions included). */
  fromAgent: DecodedMessage[];
  pings: number;
  agentCloses: number;
  onAgentFrame: (frame: Buffer) => void;
  /** Client → agent; held while the agent is not connected, as a service would. */
  toAgent(frame: Buffer): void;
  kill(): void;
}

async function startRelay(opts: { autoPong?: boolean } = {}): Promise<Relay> {
  let current: WebSocket | undefined;
  let tokenCounter = 0;
  const backlog: Buffer[] = [];
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    autoPong: opts.autoPong ?? true,
  });
  const verify = (req: http.IncomingMessage, body: Buffer) =>
    verifySigV4(
      { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers, body },
      { service: 'ssmmessages', region: REGION, credentials: [CREDS] },
    );
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks);
      const auth = await verify(req, body);
      if (!auth.ok) {
        relay.badSignatures++;
        res.writeHead(403).end(auth.message);
        return;
      }
      const parsed = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
      if (req.method !== 'POST' || req.url !== `/v1/data-channel/${SESSION_ID}` || !parsed.ClientId) {
        res.writeHead(400).end();
        return;
      }
      relay.posts++;
      if (relay.failPosts > 0) {
        relay.failPosts--;
        res.writeHead(500).end('injected failure');
        return;
      }
      res
        .writeHead(201, { 'content-type': 'application/xml' })
        .end(
          `<CreateDataChannelResponse><TokenValue>token-${++tokenCounter}</TokenValue></CreateDataChannelResponse>`,
        );
    });
  });
  server.on('upgrade', async (req, socket, head) => {
    const auth = await verify(req, Buffer.alloc(0));
    if (!auth.ok || req.url !== `/v1/data-channel/${SESSION_ID}?role=publish_subscribe`) {
      relay.badSignatures++;
      socket.end('HTTP/1.1 403 Forbidden\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      let opened = false;
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        if (!opened) {
          opened = !isBinary;
          if (!opened) return ws.terminate();
          relay.opens.push(JSON.parse(data.toString('utf8')));
          current = ws;
          for (const f of backlog.splice(0)) ws.send(f);
          return;
        }
        const d = decodeMessage(data);
        if (d.ok) relay.fromAgent.push(d.message);
        relay.onAgentFrame(data);
      });
      ws.on('ping', () => relay.pings++);
      ws.on('close', () => {
        if (current === ws) {
          current = undefined;
          relay.agentCloses++;
        }
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const relay: Relay = {
    endpoint: `http://127.0.0.1:${port}`,
    posts: 0,
    failPosts: 0,
    badSignatures: 0,
    opens: [],
    fromAgent: [],
    pings: 0,
    agentCloses: 0,
    onAgentFrame: () => {},
    toAgent(frame) {
      if (current && current.readyState === WebSocket.OPEN) current.send(frame);
      else backlog.push(frame);
    },
    kill() {
      current?.terminate();
    },
  };
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        for (const c of wss.clients) c.terminate();
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  return relay;
}

// ---- the client, played with the protocol core --------------------------------------------------------

interface Conn {
  chunks: Buffer[];
  bytes: number;
  remoteClosed: boolean;
}

interface Client {
  dc: DataChannel;
  port: PortSession;
  ready: Promise<PortSessionInfo>;
  conns: Map<number, Conn>;
  connectErrors: number;
  open(): number;
  received(id: number): Buffer;
}

function startClient(relay: Relay, opts: { clientVersion?: string; reackDuplicates?: boolean } = {}): Client {
  let resolveReady: (info: PortSessionInfo) => void = () => {};
  const ready = new Promise<PortSessionInfo>((r) => {
    resolveReady = r;
  });
  const conns = new Map<number, Conn>();
  const conn = (id: number) => {
    let c = conns.get(id);
    if (!c) {
      c = { chunks: [], bytes: 0, remoteClosed: false };
      conns.set(id, c);
    }
    return c;
  };
  const port: PortSession = new PortSession(
    { clientVersion: opts.clientVersion ?? '1.2.764.0', now: Date.now() },
    {
      sendStream: (type, payload) => dc.sendStream(type, payload),
      ready: (info) => resolveReady(info),
      data: (id, data) => {
        const c = conn(id);
        c.chunks.push(Buffer.from(data));
        c.bytes += data.length;
      },
      remoteClosed: (id) => {
        conn(id).remoteClosed = true;
      },
      connectToPortError: () => {
        client.connectErrors++;
      },
      failed: () => {},
    },
  );
  const dc: DataChannel = new DataChannel({
    role: 'client',
    now: Date.now,
    send: (frame) => relay.toAgent(frame),
    deliver: (msg) => port.deliver(msg),
    reackDuplicates: opts.reackDuplicates ?? true,
  });
  relay.onAgentFrame = (frame) => dc.receive(frame);
  const timer = setInterval(() => {
    dc.tick();
    port.tick(Date.now());
  }, 100);
  cleanups.push(() => {
    clearInterval(timer);
    port.close();
    dc.close();
  });
  const client: Client = {
    dc,
    port,
    ready,
    conns,
    connectErrors: 0,
    open() {
      const id = port.openConnection();
      conn(id);
      return id;
    },
    received(id) {
      return Buffer.concat(conns.get(id)?.chunks ?? []);
    },
  };
  return client;
}

/** A client that only keeps the reliability layer; the test writes payloads itself. */
function startRawClient(relay: Relay, opts: { reackDuplicates?: boolean } = {}) {
  const delivered: DecodedMessage[] = [];
  const dc = new DataChannel({
    role: 'client',
    now: Date.now,
    send: (frame) => relay.toAgent(frame),
    deliver: (msg) => {
      delivered.push(msg);
      return true;
    },
    reackDuplicates: opts.reackDuplicates ?? true,
  });
  relay.onAgentFrame = (frame) => dc.receive(frame);
  const timer = setInterval(() => dc.tick(), 100);
  cleanups.push(() => {
    clearInterval(timer);
    dc.close();
  });
  return { dc, delivered };
}

function makeAgent(relay: Relay, over: Partial<SimAgentOptions> = {}): SimAgent {
  const agent = new SimAgent({
    endpoint: relay.endpoint,
    region: REGION,
    credentials: CREDS,
    sessionId: SESSION_ID,
    instanceId: INSTANCE_ID,
    agentVersion: '3.3.987.0',
    properties: { localPortNumber: '0', portNumber: '9', type: 'LocalPortForwarding' },
    seed: 7,
    ...over,
  });
  cleanups.push(() => agent.stop('test over'));
  return agent;
}

function endedReason(agent: SimAgent): Promise<string> {
  return new Promise((r) => agent.once('ended', r));
}

function handshakeResponse(clientVersion: string, status = 1): Buffer {
  return buildHandshakeResponse({
    ClientVersion: clientVersion,
    ProcessedClientActions: [
      { ActionType: 'SessionType', ActionStatus: status, ActionResult: null, Error: '' },
    ],
    Errors: null,
  });
}

const isAck = (m: DecodedMessage, seq: number) =>
  m.messageType === MessageType.Acknowledge &&
  parseAcknowledge(m.payload)?.AcknowledgedMessageSequenceNumber === seq;
const isStream = (m: DecodedMessage, seq: number) =>
  m.messageType === MessageType.OutputStreamData && m.sequenceNumber === seq;

/** The agent's Output byte stream (first copy of each sequence number), parsed as smux frames. */
function agentSmuxFrames(relay: Relay): { cmd: number; sid: number; length: number }[] {
  const bySeq = new Map<number, DecodedMessage>();
  for (const m of relay.fromAgent) {
    if (m.messageType === MessageType.OutputStreamData && !bySeq.has(m.sequenceNumber))
      bySeq.set(m.sequenceNumber, m);
  }
  const stream = Buffer.concat(
    [...bySeq.values()]
      .sort((a, b) => a.sequenceNumber - b.sequenceNumber)
      .filter((m) => m.payloadType === PayloadType.Output)
      .map((m) => m.payload),
  );
  const frames: { cmd: number; sid: number; length: number }[] = [];
  for (let off = 0; off + 8 <= stream.length; ) {
    expect(stream[off]).toBe(1);
    const length = stream.readUInt16LE(off + 2);
    frames.push({ cmd: stream[off + 1], sid: stream.readUInt32LE(off + 4), length });
    off += 8 + length;
  }
  return frames;
}

/** Opens a connection, sends `data`, waits for all of it to come back from the echo server, closes. */
async function echoThrough(client: Client, data: Buffer): Promise<Buffer> {
  const id = client.open();
  client.port.write(id, data);
  await waitFor(
    () => (client.conns.get(id)?.bytes ?? 0) >= data.length,
    `echo of ${data.length} bytes`,
    15_000,
  );
  client.port.closeConnection(id);
  return client.received(id);
}

async function echoServer() {
  const echo = await startEchoServer();
  cleanups.push(() => echo.close());
  return echo;
}

// ---- tests --------------------------------------------------------------------------------------------

describe('SimAgent handshake', () => {
  it('connects like the real agent and completes the handshake: ack first, then HandshakeComplete', async () => {
    const relay = await startRelay();
    const raw = startRawClient(relay);
    const agent = makeAgent(relay, {
      properties: {
        type: 'LocalPortForwarding',
        portNumber: '5432',
        localPortNumber: '0',
        host: 'localhost',
      },
    });
    await agent.start();
    await waitFor(() => relay.opens.length === 1, 'OpenDataChannel');
    expect(relay.posts).toBe(1);
    expect(relay.badSignatures).toBe(0);
    expect(Object.keys(relay.opens[0])).toEqual([
      'MessageSchemaVersion',
      'RequestId',
      'TokenValue',
      'ClientInstanceId',
      'ClientId',
    ]);
    expect(relay.opens[0]).toMatchObject({
      MessageSchemaVersion: '1.0',
      TokenValue: 'token-1',
      ClientInstanceId: INSTANCE_ID,
    });

    await waitFor(() => relay.fromAgent.length >= 2, 'session state and HandshakeRequest');
    const [state, request] = relay.fromAgent;
    expect(state).toMatchObject({ messageType: MessageType.AgentSessionState, sequenceNumber: 0, flags: 3 });
    expect(JSON.parse(state.payload.toString())).toEqual({
      SchemaVersion: 1,
      SessionState: 'Connected',
      SessionId: SESSION_ID,
    });
    expect(request).toMatchObject({
      messageType: MessageType.OutputStreamData,
      sequenceNumber: 0,
      flags: HeaderFlags.Syn,
      payloadType: PayloadType.HandshakeRequest,
    });
    // Sorted keys, as the real agent's frames show.
    expect(request.payload.toString()).toBe(
      '{"AgentVersion":"3.3.987.0","RequestedClientActions":[{"ActionType":"SessionType","ActionParameters":{"SessionType":"Port","Properties":{"host":"localhost","localPortNumber":"0","portNumber":"5432","type":"LocalPortForwarding"}}}]}',
    );
    expect(parseHandshakeRequest(request.payload)?.AgentVersion).toBe('3.3.987.0');

    const ready = new Promise((r) => agent.once('ready', r));
    raw.dc.sendStream(PayloadType.HandshakeResponse, handshakeResponse('1.2.764.0'));
    await waitFor(() => relay.fromAgent.some((m) => isStream(m, 1)), 'HandshakeComplete');
    expect(await ready).toBe('mux');
    const ackAt = relay.fromAgent.findIndex((m) => isAck(m, 0));
    const completeAt = relay.fromAgent.findIndex((m) => isStream(m, 1));
    expect(ackAt).toBeGreaterThan(-1);
    expect(ackAt).toBeLessThan(completeAt);
    const complete = relay.fromAgent[completeAt];
    expect(complete.payloadType).toBe(PayloadType.HandshakeComplete);
    expect(complete.flags).toBe(0);
    expect(Object.keys(JSON.parse(complete.payload.toString()))).toEqual([
      'HandshakeTimeToComplete',
      'CustomerMessage',
    ]);
    expect(parseHandshakeComplete(complete.payload)?.HandshakeTimeToComplete).toBeGreaterThan(0);
    expect(agent.stats()).toMatchObject({ mode: 'mux', clientVersion: '1.2.764.0', violations: [] });
  });

  it('with completeBeforeAck 1 sends HandshakeComplete before acking the HandshakeResponse', async () => {
    const relay = await startRelay();
    const raw = startRawClient(relay);
    const agent = makeAgent(relay, { completeBeforeAck: 1 });
    await agent.start();
    await waitFor(() => raw.delivered.length === 1, 'HandshakeRequest');
    raw.dc.sendStream(PayloadType.HandshakeResponse, handshakeResponse('1.2.764.0'));
    await waitFor(() => relay.fromAgent.some((m) => isAck(m, 0)), 'ack of the HandshakeResponse');
    const ackAt = relay.fromAgent.findIndex((m) => isAck(m, 0));
    const completeAt = relay.fromAgent.findIndex((m) => isStream(m, 1));
    expect(completeAt).toBeGreaterThan(-1);
    expect(completeAt).toBeLessThan(ackAt);
    // The client's data channel takes either order.
    await waitFor(() => raw.dc.unackedCount === 0 && raw.delivered.length === 2, 'handshake settled');
  });

  it('resends the HandshakeRequest until it is acked, then stops', async () => {
    const relay = await startRelay();
    const agent = makeAgent(relay);
    await agent.start();
    await sleep(700);
    const copies = () => relay.fromAgent.filter((m) => isStream(m, 0)).length;
    expect(copies()).toBeGreaterThanOrEqual(3);
    const raw = startRawClient(relay);
    await waitFor(() => raw.delivered.length === 1, 'HandshakeRequest delivered to the late client');
    await sleep(50);
    const afterAck = copies();
    await sleep(500);
    expect(copies()).toBe(afterAck);
    expect(agent.stats().dataChannel.unackedMessages).toBe(0);
  });

  it('gives up without a HandshakeResponse and closes its WebSocket', async () => {
    const relay = await startRelay();
    startRawClient(relay); // acks the request but never answers it
    const agent = makeAgent(relay, { handshakeTimeoutMs: 300 });
    const ended = endedReason(agent);
    await agent.start();
    expect(await ended).toBe(HANDSHAKE_TIMEOUT_REASON);
    expect(agent.ended).toBe(true);
    await waitFor(() => relay.agentCloses === 1, 'agent WebSocket closed');
    expect(relay.posts).toBe(1); // a session it ended is not reconnected
  });

  it('fails the session when the client fails an action', async () => {
    const relay = await startRelay();
    const raw = startRawClient(relay);
    const agent = makeAgent(relay);
    const ended = endedReason(agent);
    await agent.start();
    await waitFor(() => raw.delivered.length === 1, 'HandshakeRequest');
    raw.dc.sendStream(PayloadType.HandshakeResponse, handshakeResponse('1.2.764.0', 2));
    expect(await ended).toMatch(/^Handshake failed: SessionType status 2/);
    expect(relay.fromAgent.some((m) => isStream(m, 1))).toBe(false);
  });

  it('acks and discards client data that arrives before HandshakeComplete', async () => {
    const sink = await startSinkServer();
    cleanups.push(() => sink.close());
    const relay = await startRelay();
    const raw = startRawClient(relay);
    // ClientVersion below 1.1.70 → basic mode, so anything not discarded would reach the sink.
    const agent = makeAgent(relay, {
      properties: { portNumber: String(sink.port), type: 'LocalPortForwarding' },
    });
    await agent.start();
    await waitFor(() => raw.delivered.length === 1, 'HandshakeRequest');
    raw.dc.sendStream(PayloadType.Output, Buffer.from('EARLY'));
    await waitFor(() => relay.fromAgent.some((m) => isAck(m, 0)), 'ack of the early data');
    const ready = new Promise((r) => agent.once('ready', r));
    raw.dc.sendStream(PayloadType.HandshakeResponse, handshakeResponse('1.1.0.0'));
    expect(await ready).toBe('basic');
    raw.dc.sendStream(PayloadType.Output, Buffer.from('LATE'));
    await waitFor(() => sink.received() === 4, 'late data at the destination');
    await sleep(50);
    expect(sink.received()).toBe(4);
    expect(sink.digest()).toBe(createHash('sha256').update('LATE').digest('hex'));
    expect(agent.stats().discardedBeforeHandshake).toBe(1);
  });

  it('records SPEC 12.6 violations in what the client sends', async () => {
    const relay = await startRelay();
    const raw = startRawClient(relay);
    const agent = makeAgent(relay);
    await agent.start();
    await waitFor(() => raw.delivered.length === 1, 'HandshakeRequest');
    const request = relay.fromAgent.find((m) => isStream(m, 0))!;
    relay.toAgent(
      encodeMessage({
        messageType: MessageType.Acknowledge,
        sequenceNumber: 0,
        flags: 0,
        payloadType: PayloadType.Output,
        payload: Buffer.from(
          JSON.stringify({
            AcknowledgedMessageType: 'output_stream_data',
            AcknowledgedMessageId: request.messageId,
            AcknowledgedMessageSequenceNumber: 0,
            IsSequentialMessage: true,
            Extra: 1,
          }),
        ),
      }),
    );
    relay.toAgent(
      encodeMessage({
        messageType: MessageType.InputStreamData,
        sequenceNumber: 0,
        flags: 1,
        payloadType: PayloadType.HandshakeResponse,
        payload: handshakeResponse('1.2.764.0'),
      }),
    );
    const corrupt = encodeMessage({
      messageType: MessageType.InputStreamData,
      sequenceNumber: 1,
      flags: 0,
      payloadType: PayloadType.Output,
      payload: Buffer.from('x'),
    });
    corrupt[corrupt.length - 1] ^= 0xff;
    relay.toAgent(corrupt);
    await waitFor(() => agent.stats().violations.length >= 5, 'violations');
    expect(agent.stats().violations).toEqual([
      'acknowledge seq 0: flags 0, expected 3',
      'acknowledge seq 0: payload type 1, expected 0',
      expect.stringMatching(/^acknowledge seq 0: acknowledge keys .*Extra/),
      'input_stream_data seq 0: flags 1, expected 0',
      expect.stringMatching(/^DIGEST_MISMATCH/),
    ]);
  });

  it('re-acks a duplicate client message unless emulating a pre-3.2.1041 agent', async () => {
    for (const reackDuplicates of [true, false]) {
      const relay = await startRelay();
      const raw = startRawClient(relay);
      const agent = makeAgent(relay, { reackDuplicates });
      await agent.start();
      await waitFor(() => raw.delivered.length === 1, 'HandshakeRequest');
      const frame = encodeMessage({
        messageType: MessageType.InputStreamData,
        sequenceNumber: 0,
        flags: 0,
        payloadType: PayloadType.HandshakeResponse,
        payload: handshakeResponse('1.2.764.0'),
      });
      relay.toAgent(frame);
      await waitFor(() => relay.fromAgent.some((m) => isAck(m, 0)), 'first ack');
      relay.toAgent(frame);
      await waitFor(() => agent.stats().dataChannel.duplicates === 1, 'duplicate seen');
      await sleep(30);
      expect(relay.fromAgent.filter((m) => isAck(m, 0)).length).toBe(reackDuplicates ? 2 : 1);
    }
  });
});

describe('SimAgent mux mode', () => {
  it('carries several concurrent streams to a real TCP echo server byte-exact, echoing each FIN', async () => {
    const echo = await echoServer();
    const relay = await startRelay();
    const client = startClient(relay);
    const agent = makeAgent(relay, {
      properties: { portNumber: String(echo.port), type: 'LocalPortForwarding' },
    });
    await agent.start();
    expect((await client.ready).mode).toBe('mux');
    const payloads = [1, 2, 3, 4, 5].map((i) => pseudoRandomBytes(20_000 + i * 7_919, i));
    const results = await Promise.all(payloads.map((p) => echoThrough(client, p)));
    results.forEach((r, i) => {
      expect(r.equals(payloads[i])).toBe(true);
    });
    await waitFor(
      () => agentSmuxFrames(relay).filter((f) => f.cmd === SmuxCmd.FIN).length === 5,
      'agent FINs',
    );
    const fins = agentSmuxFrames(relay)
      .filter((f) => f.cmd === SmuxCmd.FIN)
      .map((f) => f.sid)
      .sort((a, b) => a - b);
    expect(fins).toEqual([3, 5, 7, 9, 11]);
    // Never more than 1024 payload bytes per message.
    expect(Math.max(...relay.fromAgent.map((m) => m.payload.length))).toBeLessThanOrEqual(1024);
    const stats = agent.stats();
    expect(stats).toMatchObject({ streamsAccepted: 5, dialFailures: 0, violations: [] });
    const total = payloads.reduce((n, p) => n + p.length, 0);
    expect(stats.bytesToDestination).toBe(total);
    expect(stats.bytesFromDestination).toBe(total);
  });

  it('shares a paced session between streams in turn, one smux frame each, as the smux shaper does', async () => {
    const size = 512 * 1024;
    const source = await startSourceServer(size, 5);
    cleanups.push(() => source.close());
    const relay = await startRelay();
    const client = startClient(relay);
    const agent = makeAgent(relay, {
      pacing: true,
      properties: { portNumber: String(source.port), type: 'LocalPortForwarding' },
    });
    await agent.start();
    await client.ready;
    const ids = [0, 1, 2, 3].map(() => client.open());
    await waitFor(() => ids.every((id) => (client.conns.get(id)?.bytes ?? 0) >= size), 'downloads', 20_000);
    for (const id of ids) expect(client.received(id).equals(pseudoRandomBytes(size, 5))).toBe(true);
    // Replay the agent's frames in order: when the first stream is complete, the others are not far
    // behind (each got a frame per turn), and none waited for another to finish before starting.
    const got = new Map<number, number>(ids.map((id) => [id, 0]));
    let firstDone: Map<number, number> | undefined;
    let startedBefore = 0;
    for (const f of agentSmuxFrames(relay)) {
      if (f.cmd !== SmuxCmd.PSH) continue;
      const before = got.get(f.sid) ?? 0;
      if (before === 0 && Math.max(...got.values()) <= 192 * 1024) startedBefore++;
      got.set(f.sid, before + f.length);
      if (!firstDone && before + f.length >= size) firstDone = new Map(got);
    }
    expect(startedBefore).toBe(4);
    expect(Math.min(...(firstDone as Map<number, number>).values())).toBeGreaterThanOrEqual(size / 2);
  });

  it('answers a refused destination with ConnectToPortError and then the FIN, and the session goes on', async () => {
    const port = await closedPort();
    const relay = await startRelay();
    const client = startClient(relay);
    const agent = makeAgent(relay, { properties: { portNumber: String(port), type: 'LocalPortForwarding' } });
    await agent.start();
    await client.ready;
    const first = client.open();
    client.port.write(first, Buffer.from('lost'));
    await waitFor(() => client.conns.get(first)!.remoteClosed, 'FIN for the refused stream');
    expect(client.connectErrors).toBe(1);
    const flag = relay.fromAgent.find((m) => m.payloadType === PayloadType.Flag)!;
    expect(decodeFlag(flag.payload)).toBe(PayloadFlag.ConnectToPortError);
    expect(flag.payload).toEqual(Buffer.from([0, 0, 0, 3]));
    const next = relay.fromAgent.find((m) => isStream(m, flag.sequenceNumber + 1))!;
    expect(next.payloadType).toBe(PayloadType.Output);
    expect(next.payload.subarray(0, 8)).toEqual(Buffer.from([1, SmuxCmd.FIN, 0, 0, first, 0, 0, 0]));

    // Something starts listening there: the same session now reaches it.
    const late = net.createServer((s) => s.pipe(s));
    await new Promise<void>((r) => late.listen(port, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => late.close(() => r())));
    const data = pseudoRandomBytes(5000, 3);
    expect((await echoThrough(client, data)).equals(data)).toBe(true);
    expect(agent.ended).toBe(false);
    expect(agent.stats()).toMatchObject({ streamsAccepted: 2, dialFailures: 1 });
  });

  it('never dials a non-loopback destination', async () => {
    const relay = await startRelay();
    const client = startClient(relay);
    const agent = makeAgent(relay, {
      properties: { host: '192.0.2.10', portNumber: '5432', type: 'LocalPortForwarding' },
    });
    await agent.start();
    await client.ready;
    const id = client.open();
    await waitFor(() => client.conns.get(id)!.remoteClosed, 'FIN');
    expect(client.connectErrors).toBe(1);
    expect(agent.stats().dialFailures).toBe(1);
  });

  it('pacing off and on both echo 1 MB byte-exact', async () => {
    const echo = await echoServer();
    const data = pseudoRandomBytes(1024 * 1024, 42);
    for (const pacing of [false, true]) {
      const relay = await startRelay();
      const client = startClient(relay);
      const agent = makeAgent(relay, {
        pacing,
        properties: { portNumber: String(echo.port), type: 'LocalPortForwarding' },
      });
      await agent.start();
      await client.ready;
      expect((await echoThrough(client, data)).equals(data)).toBe(true);
      expect(Math.max(...relay.fromAgent.map((m) => m.payload.length))).toBeLessThanOrEqual(1024);
      agent.stop();
    }
  });

  it('holds Output back (unacked) while the destination does not read, and loses nothing', async () => {
    const total = 16 * 1024 * 1024; // well past what loopback socket buffers absorb
    const hash = createHash('sha256');
    let received = 0;
    let destination: net.Socket | undefined;
    const server = net.createServer((s) => {
      destination = s;
      s.pause();
      s.on('data', (c: Buffer) => {
        hash.update(c);
        received += c.length;
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    cleanups.push(() => destination?.destroy());
    const relay = await startRelay();
    const client = startClient(relay);
    const agent = makeAgent(relay, {
      pacing: false,
      maxDestinationBufferBytes: 64 * 1024,
      properties: {
        portNumber: String((server.address() as net.AddressInfo).port),
        type: 'LocalPortForwarding',
      },
    });
    await agent.start();
    await client.ready;
    const data = pseudoRandomBytes(total, 9);
    const id = client.open();
    client.port.write(id, data);
    await waitFor(() => destination !== undefined, 'destination connection');
    await sleep(600);
    expect(agent.stats().bytesToDestination).toBeLessThan(total);
    destination!.resume();
    await waitFor(() => received === total, 'all bytes at the destination', 20_000);
    expect(hash.digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
    expect(client.dc.stats().retransmissions).toBeGreaterThan(0);
  });

  it('sends smux NOPs only for ClientVersion <= 1.2.331.0, and dies of its keepalive when the client is silent', async () => {
    const start = async (clientVersion: string, over: Partial<SimAgentOptions> = {}) => {
      const relay = await startRelay();
      const client = startClient(relay, { clientVersion });
      const agent = makeAgent(relay, { agentVersion: '3.3.987.0', smuxKeepaliveIntervalMs: 100, ...over });
      const ended = endedReason(agent);
      await agent.start();
      await client.ready;
      return { relay, agent, ended };
    };
    const old = await start('1.2.331.0');
    const current = await start('1.2.332.0');
    await sleep(600);
    const nops = (r: Relay) => agentSmuxFrames(r).filter((f) => f.cmd === SmuxCmd.NOP && f.sid === 0).length;
    expect(nops(old.relay)).toBeGreaterThanOrEqual(3);
    expect(nops(current.relay)).toBe(0);

    // The plugin-style client (against a new agent) runs keepalive off and stays silent: the agent's
    // keepalive ends the idle session, the trap SPEC 10.2 describes.
    const silent = await start('1.2.331.0', { agentVersion: '3.3.987.0', smuxKeepaliveTimeoutMs: 300 });
    expect(await silent.ended).toMatch(/^smux session failed: no smux frame received/);

    // Before 3.1.1575.0 the agent kept keepalive on whatever the client said (SPEC 10.2 history).
    const older = await start('1.2.764.0', { agentVersion: '3.1.1000.0' });
    await sleep(350);
    expect(nops(older.relay)).toBeGreaterThanOrEqual(1);
  });
});

describe('SimAgent basic mode', () => {
  async function trackingEcho() {
    const sockets: net.Socket[] = [];
    const server = net.createServer((s) => {
      sockets.push(s);
      s.on('error', () => {});
      s.pipe(s);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(
      () =>
        new Promise<void>((r) => {
          for (const s of sockets) s.destroy();
          server.close(() => r());
        }),
    );
    return { port: (server.address() as net.AddressInfo).port, sockets };
  }

  it('dials at start, closes on DisconnectToPort, redials on the next Output, and after destination EOF', async () => {
    const echo = await trackingEcho();
    const relay = await startRelay();
    const client = startClient(relay, { clientVersion: '1.1.0.0' });
    const agent = makeAgent(relay, {
      agentVersion: '3.0.161.0',
      properties: { portNumber: String(echo.port), type: 'LocalPortForwarding', localPortNumber: '0' },
    });
    const ready = new Promise((r) => agent.once('ready', r));
    await agent.start();
    expect((await client.ready).mode).toBe('basic');
    expect(await ready).toBe('basic');
    expect(echo.sockets.length).toBe(1); // dialled at session start

    const c1 = client.open();
    client.port.write(c1, Buffer.from('hello'));
    await waitFor(() => client.received(c1).toString() === 'hello', 'first echo');
    client.port.closeConnection(c1); // Flag 1
    await waitFor(() => echo.sockets[0].destroyed || echo.sockets[0].readableEnded, 'destination closed');
    expect(echo.sockets.length).toBe(1);
    // The slot reopens only once c1's output can no longer arrive (protocol/basic-gate.ts).
    expect(client.port.canOpenConnection).toBe(false);
    await waitFor(() => client.port.canOpenConnection, 'basic-mode slot free again');

    const c2 = client.open();
    client.port.write(c2, Buffer.from('again'));
    await waitFor(() => client.received(c2).toString() === 'again', 'echo after redial');
    expect(echo.sockets.length).toBe(2);

    echo.sockets[1].end(); // the destination hangs up on its own
    await sleep(50);
    const big = pseudoRandomBytes(50_000, 5);
    client.port.write(c2, big);
    await waitFor(() => client.received(c2).length === 5 + big.length, 'echo after EOF redial');
    expect(client.received(c2).subarray(5).equals(big)).toBe(true);
    expect(echo.sockets.length).toBe(3);
    expect(agent.stats()).toMatchObject({ mode: 'basic', dialFailures: 0, violations: [] });
  });

  it('fails the session when the destination refuses at start, or crashes with emulate.basicRefuseExit', async () => {
    for (const basicRefuseExit of [false, true]) {
      const relay = await startRelay();
      const client = startClient(relay, { clientVersion: '1.1.0.0' });
      const agent = makeAgent(relay, {
        agentVersion: '3.0.161.0',
        emulate: { basicRefuseExit },
        properties: { portNumber: String(await closedPort()), type: 'LocalPortForwarding' },
      });
      const ended = endedReason(agent);
      await agent.start();
      await client.ready;
      const reason = await ended;
      if (basicRefuseExit) expect(reason).toBe('agent crashed');
      else expect(reason).toMatch(/^Unable to connect to specified port: /);
      await waitFor(() => relay.agentCloses === 1, 'agent WebSocket closed');
    }
  });
});

describe('SimAgent session end, reconnect and defect emulation', () => {
  it('ends on the TerminateSession flag after acking it', async () => {
    const echo = await echoServer();
    const relay = await startRelay();
    const client = startClient(relay);
    const agent = makeAgent(relay, {
      properties: { portNumber: String(echo.port), type: 'LocalPortForwarding' },
    });
    const ended = endedReason(agent);
    await agent.start();
    await client.ready;
    const data = pseudoRandomBytes(3000, 1);
    expect((await echoThrough(client, data)).equals(data)).toBe(true);
    const flagSeq = client.dc.nextSequenceNumber;
    client.port.terminate();
    expect(await ended).toBe('TerminateSession flag received');
    expect(relay.fromAgent.some((m) => isAck(m, flagSeq))).toBe(true);
    await waitFor(() => relay.agentCloses === 1, 'agent WebSocket closed');
  });

  it('ends on channel_closed from the service', async () => {
    const relay = await startRelay();
    const client = startClient(relay);
    const agent = makeAgent(relay);
    const ended = endedReason(agent);
    await agent.start();
    await client.ready;
    relay.toAgent(
      encodeMessage({
        messageType: MessageType.ChannelClosed,
        sequenceNumber: 0,
        flags: 0,
        payloadType: PayloadType.None,
        payload: buildChannelClosed({
          messageId: '3fa85f64-5717-4562-b3fc-2c963f66afa6',
          createdDate: String(Date.now()),
          destinationId: INSTANCE_ID,
          sessionId: SESSION_ID,
          output: 'terminated by API',
        }),
      }),
    );
    expect(await ended).toBe('channel_closed: terminated by API');
  });

  it('reconnects with a new token when its WebSocket drops mid-transfer, keeping sequence state', async () => {
    const echo = await echoServer();
    const relay = await startRelay();
    const client = startClient(relay);
    const agent = makeAgent(relay, {
      properties: { portNumber: String(echo.port), type: 'LocalPortForwarding' },
    });
    await agent.start();
    await client.ready;
    relay.failPosts = 1; // the first retry fails: back-off, then success
    const data = pseudoRandomBytes(300_000, 11);
    const id = client.open();
    client.port.write(id, data);
    await waitFor(() => (client.conns.get(id)?.bytes ?? 0) > 50_000, 'transfer under way');
    relay.kill();
    await waitFor(
      () => client.conns.get(id)!.bytes >= data.length,
      'transfer finished after reconnect',
      15_000,
    );
    expect(client.received(id).equals(data)).toBe(true);
    expect(relay.posts).toBe(3);
    expect(relay.opens).toHaveLength(2);
    expect(relay.opens[1].ClientId).toBe(relay.opens[0].ClientId);
    expect(relay.opens[1].TokenValue).toBe('token-2');
    expect(relay.opens[1].RequestId).not.toBe(relay.opens[0].RequestId);
    expect(agent.stats().reconnects).toBe(1);
    expect(agent.ended).toBe(false);
  });

  it('pings its WebSocket and treats a missing pong as a dead connection', async () => {
    const relay = await startRelay({ autoPong: false });
    const agent = makeAgent(relay, { pingIntervalMs: 50, pongTimeoutMs: 100 });
    await agent.start();
    await waitFor(() => agent.stats().reconnects >= 1, 'reconnect after missing pongs');
    expect(relay.pings).toBeGreaterThanOrEqual(1);
    expect(relay.posts).toBeGreaterThanOrEqual(2);
  });

  it('stops reading its destination while paused by the service', async () => {
    let sentAt = 0;
    const payload = pseudoRandomBytes(20_000, 8);
    const source = net.createServer((s) => {
      s.on('error', () => {});
      setTimeout(() => {
        sentAt = Date.now();
        s.end(payload);
      }, 150);
    });
    await new Promise<void>((r) => source.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => source.close(() => r())));
    const relay = await startRelay();
    const client = startClient(relay);
    const agent = makeAgent(relay, {
      properties: {
        portNumber: String((source.address() as net.AddressInfo).port),
        type: 'LocalPortForwarding',
      },
    });
    await agent.start();
    await client.ready;
    const publication = (messageType: string) =>
      encodeMessage({
        messageType,
        sequenceNumber: 0,
        flags: 0,
        payloadType: PayloadType.None,
        payload: Buffer.alloc(0),
      });
    const id = client.open();
    await waitFor(
      () => agent.stats().streamsAccepted === 1 && client.dc.unackedCount === 0,
      'stream accepted',
    );
    relay.toAgent(publication(MessageType.PausePublication));
    await waitFor(() => sentAt > 0, 'source sent');
    await sleep(300);
    expect(agent.stats().bytesFromDestination).toBe(0);
    expect(client.conns.get(id)!.bytes).toBe(0);
    relay.toAgent(publication(MessageType.StartPublication));
    await waitFor(() => client.conns.get(id)!.remoteClosed, 'data and FIN after start_publication');
    expect(client.received(id).equals(payload)).toBe(true);
  });

  it('stays correct when a random fraction of its acks get lost (emulate.stuckMessage as a probability)', async () => {
    const echo = await echoServer();
    const relay = await startRelay();
    const client = startClient(relay);
    const agent = makeAgent(relay, {
      emulate: { stuckMessage: 0.1 },
      seed: 3,
      properties: { portNumber: String(echo.port), type: 'LocalPortForwarding' },
    });
    await agent.start();
    await client.ready;
    const data = pseudoRandomBytes(20_000, 12);
    expect((await echoThrough(client, data)).equals(data)).toBe(true);
    await waitFor(() => agent.stats().dataChannel.unackedMessages === 0, 'all healed', 10_000);
    expect(agent.stats().stuckAcksDropped).toBeGreaterThan(0);
  });

  it('keeps resending a message whose ack it lost until the client re-acks the duplicate', async () => {
    // Client that re-acks duplicates heals the stuck message.
    {
      const relay = await startRelay();
      const client = startClient(relay);
      const agent = makeAgent(relay, { emulate: { stuckMessage: { seq: 1 } } });
      await agent.start();
      await client.ready;
      await waitFor(() => agent.stats().dataChannel.unackedMessages === 0, 'stuck message healed');
      expect(agent.stats().stuckAcksDropped).toBe(1);
      expect(agent.stats().dataChannel.retransmissions).toBeGreaterThanOrEqual(1);
      expect(client.dc.stats().duplicates).toBeGreaterThanOrEqual(1);
    }
    // Client that drops duplicates (the reference plugin): resent every RTO, forever.
    {
      const relay = await startRelay();
      const client = startClient(relay, { reackDuplicates: false });
      const agent = makeAgent(relay, { emulate: { stuckMessage: { seq: 1 } } });
      await agent.start();
      await client.ready;
      await sleep(1000);
      const stats = agent.stats();
      expect(stats.dataChannel.unackedMessages).toBe(1);
      expect(stats.dataChannel.retransmissions).toBeGreaterThanOrEqual(3);
      const copies = relay.fromAgent.filter((m) => isStream(m, 1));
      expect(copies.length).toBe(stats.dataChannel.retransmissions + 1);
      // One ack for the duplicate ends it.
      relay.toAgent(
        encodeMessage({
          messageType: MessageType.Acknowledge,
          sequenceNumber: 0,
          flags: HeaderFlags.Ack,
          payloadType: PayloadType.None,
          payload: buildAcknowledge(MessageType.OutputStreamData, copies[0].messageId, 1),
        }),
      );
      await waitFor(() => agent.stats().dataChannel.unackedMessages === 0, 'acked at last');
      const settled = relay.fromAgent.filter((m) => isStream(m, 1)).length;
      await sleep(400);
      expect(relay.fromAgent.filter((m) => isStream(m, 1)).length).toBe(settled);
    }
  });
});
