/**
 * Unit tests of the daemon's WebSocket rules against real sockets: dead-connection detection and the
 * wss-only rule. A stand-in SsmGateway replaces the AWS SDK (the simulator covers the real path).
 */
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import type { SessionTokens, SsmGateway } from '../../src/daemon/aws.js';
import { ClientSession, type SessionHandlers } from '../../src/daemon/session.js';
import { Transport } from '../../src/daemon/transport.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function gatewayReturning(
  tokens: SessionTokens,
  loopbackEndpoint: boolean,
  terminated: string[],
): SsmGateway {
  return {
    loopbackEndpoint,
    startSession: async () => tokens,
    resumeSession: async () => undefined,
    terminateSession: async (id) => {
      terminated.push(id);
    },
    findInstancesByTag: async () => [],
    describeInstance: async () => undefined,
    signStreamUrl: async () => ({}),
    credentials: async () => ({ accessKeyId: 'AKIATEST', secretAccessKey: 'test' }),
    destroy: () => {},
  };
}

const handlers: SessionHandlers = {
  data: () => {},
  remoteClosed: () => {},
  connectToPortError: () => {},
  drain: () => {},
  reconnecting: () => {},
  reconnected: () => {},
  closed: () => {},
};

describe('ClientSession', () => {
  it('refuses a plain ws:// stream URL unless the SSM endpoint is on loopback, and terminates the session', async () => {
    const terminated: string[] = [];
    const aws = gatewayReturning(
      { sessionId: 's-1', tokenValue: 't', streamUrl: 'ws://ssmmessages.example.com/v1/data-channel/s-1' },
      false,
      terminated,
    );
    await expect(
      ClientSession.start({
        aws,
        target: 'i-0123456789abcdef0',
        documentName: 'AWS-StartPortForwardingSession',
        parameters: {},
        logger: pino({ level: 'silent' }),
        handlers,
      }),
    ).rejects.toMatchObject({ code: 'INSECURE_STREAM_URL' });
    expect(terminated).toEqual(['s-1']);
  });
});

describe('Transport', () => {
  it('declares a connection dead when neither frames nor pongs arrive', async () => {
    // A server that never answers pings (autoPong off) and never sends anything.
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, autoPong: false });
    cleanups.push(() => wss.close());
    await new Promise<void>((r) => wss.once('listening', () => r()));
    const port = (wss.address() as { port: number }).port;
    let firstFrame = '';
    wss.on('connection', (ws) => ws.once('message', (d) => (firstFrame = String(d))));
    let dropped = '';
    const dropSeen = new Promise<void>((resolve) => {
      void Transport.connect({
        streamUrl: `ws://127.0.0.1:${port}/v1/data-channel/s-1?role=publish_subscribe`,
        token: 'secret-token',
        clientId: 'c-1',
        clientVersion: '1.2.764.0',
        headers: {},
        pingIntervalMs: 50,
        deadAfterMs: 200,
        onFrame: () => {},
        onDrop: (reason) => {
          dropped = reason;
          resolve();
        },
      });
    });
    await dropSeen;
    expect(dropped).toMatch(/no frame or pong/);
    expect(JSON.parse(firstFrame)).toMatchObject({
      MessageSchemaVersion: '1.0',
      TokenValue: 'secret-token',
      ClientId: 'c-1',
    });
  });
});
