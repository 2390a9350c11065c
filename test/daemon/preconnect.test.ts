/**
 * The pre-connection made while StartSession is on the wire (src/daemon/preconnect.ts): over real TLS
 * with a CA this test makes, the WebSocket upgrade rides on it (one TCP connection in all at the
 * server); a stream URL elsewhere gets nothing and the socket is closed; a refused one costs nothing.
 */
import https from 'node:https';
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { expectedStreamOrigin, PreConnection } from '../../src/daemon/preconnect.js';
import { createSimCa, type SimCa } from '../../src/sim/tls-ca.js';
import { closedPort } from '../helpers/net.js';

let ca: SimCa;
let server: https.Server;
let wss: WebSocketServer;
let port = 0;
const connections: net.Socket[] = [];

beforeAll(async () => {
  ca = await createSimCa();
  const { cert, key } = await ca.serverCert('localhost');
  server = https.createServer({ cert, key });
  server.on('secureConnection', (s) => connections.push(s));
  wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => ws.on('message', (m) => ws.send(m)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as net.AddressInfo).port;
});

afterAll(async () => {
  for (const c of wss?.clients ?? []) c.terminate();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  await ca?.close();
});

const settled = (s: net.Socket) => new Promise<void>((r) => (s.destroyed ? r() : s.once('close', () => r())));

describe('PreConnection', () => {
  it('carries the wss upgrade over the connection made ahead: one TLS connection in all', async () => {
    const before = connections.length;
    const url = `wss://localhost:${port}/v1/data-channel/s-1?role=publish_subscribe`;
    const pre = new PreConnection(`wss://localhost:${port}`, { ca: ca.caPem });
    expect(await pre.settled).toBe(true);
    const socket = pre.take(url);
    expect(socket).toBeDefined();
    const ws = new WebSocket(url, { createConnection: () => socket as net.Socket });
    try {
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      const echoed = new Promise<string>((r) => ws.once('message', (m) => r(String(m))));
      ws.send('hello');
      expect(await echoed).toBe('hello');
      expect(connections.length - before).toBe(1);
    } finally {
      ws.terminate();
    }
  });

  it('gives nothing for a stream URL elsewhere, and closes what it opened', async () => {
    const pre = new PreConnection(`wss://localhost:${port}`, { ca: ca.caPem });
    const before = connections.length;
    await new Promise<void>((r) => server.once('secureConnection', () => r()));
    expect(connections.length - before).toBe(1);
    expect(pre.take('wss://ssmmessages.eu-west-1.amazonaws.com/v1/data-channel/s-2')).toBeUndefined();
    await settled(connections[connections.length - 1]);
    expect(pre.take(`wss://localhost:${port}/again`)).toBeUndefined(); // only once
  });

  it('a refused pre-connection costs nothing: take gives undefined and nothing throws', async () => {
    const refused = await closedPort();
    const pre = new PreConnection(`ws://127.0.0.1:${refused}`);
    expect(await pre.settled).toBe(false);
    expect(pre.take(`ws://127.0.0.1:${refused}/v1/data-channel/s-3`)).toBeUndefined();
  });

  it('expects the last stream origin, else AWS public ssmmessages for AWS endpoints only', () => {
    expect(expectedStreamOrigin('ws://127.0.0.1:9', 'eu-west-1', true)).toBe('ws://127.0.0.1:9');
    expect(expectedStreamOrigin(undefined, 'eu-west-1', true)).toBeUndefined();
    expect(expectedStreamOrigin(undefined, 'eu-west-1', false)).toBe(
      'wss://ssmmessages.eu-west-1.amazonaws.com',
    );
    expect(expectedStreamOrigin(undefined, 'cn-north-1', false)).toBe(
      'wss://ssmmessages.cn-north-1.amazonaws.com.cn',
    );
  });
});
