/**
 * The agent's side of the service (SPEC 16 "the agent's side of the service", 3.1-3.3, 11.2): a
 * SigV4-signed CreateDataChannel POST for a fresh token, a signed WebSocket upgrade, the agent's own
 * OpenDataChannel (with ClientInstanceId), and the agent's retryer around all three. The simulated
 * agent reaches the simulated service only this way, over the network, as the real one does.
 */

import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { Sha256 } from '@aws-crypto/sha256-js';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import WebSocket from 'ws';
import { encodeMessage, HeaderFlags, MessageType, PayloadType } from '../../protocol/message.js';
import { buildOpenDataChannel } from '../../protocol/payloads.js';
import { zeroMask } from '../../shared/batched-write.js';
import type { AgentContext } from './options.js';

const RECONNECT_INITIAL_MS = 100;
const RECONNECT_JITTER_MS = 100;
const RECONNECT_MAX_DELAY_MS = 5_000;
const RECONNECT_MAX_RETRIES = 5;
const HTTP_TIMEOUT_MS = 10_000;

/** The service said the session is over: the agent's retryer stops on this (SPEC 11.2). */
class SessionTerminatedError extends Error {}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

export class ChannelDialer {
  private readonly signer: SignatureV4;
  private readonly endpoint: URL;

  constructor(
    private readonly ctx: AgentContext,
    private readonly clientId: string,
  ) {
    this.endpoint = new URL(ctx.opts.endpoint);
    this.signer = new SignatureV4({
      service: 'ssmmessages',
      region: ctx.opts.region,
      credentials: ctx.opts.credentials,
      sha256: Sha256,
    });
  }

  /** The agent's retryer: first try at once, then 100-199 ms doubling up to 5 s, 5 retries (SPEC 11.2). */
  async connectWithRetry(): Promise<WebSocket> {
    let delay = RECONNECT_INITIAL_MS + Math.floor(this.ctx.rand() * RECONNECT_JITTER_MS);
    let lastErr: unknown;
    for (let attempt = 0; attempt <= RECONNECT_MAX_RETRIES; attempt++) {
      if (attempt > 0) {
        await sleep(delay);
        delay = Math.min(delay * 2, RECONNECT_MAX_DELAY_MS);
      }
      if (this.ctx.isEnding()) throw new Error('session ended');
      try {
        return await this.connect();
      } catch (err) {
        if (err instanceof SessionTerminatedError) throw err;
        lastErr = err;
        this.ctx.log.debug({ err: (err as Error).message, attempt }, 'data channel open failed');
      }
    }
    throw lastErr;
  }

  private async sign(method: string, path: string, query: Record<string, string>, body: string) {
    const headers: Record<string, string> = { host: this.endpoint.host };
    if (body) headers['content-type'] = 'application/json';
    const signed = await this.signer.sign(
      new HttpRequest({
        method,
        protocol: this.endpoint.protocol,
        hostname: this.endpoint.hostname,
        port: this.endpoint.port ? Number(this.endpoint.port) : undefined,
        path,
        query,
        headers,
        body,
      }),
    );
    return signed.headers as Record<string, string>;
  }

  private channelPath(): string {
    return `/v1/data-channel/${encodeURIComponent(this.ctx.opts.sessionId)}`;
  }

  /** CreateDataChannel: a fresh token for every (re)connect. */
  private async createDataChannel(): Promise<string> {
    const path = this.channelPath();
    const body = JSON.stringify({
      MessageSchemaVersion: '1.0',
      RequestId: randomUUID(),
      ClientId: this.clientId,
    });
    const headers = await this.sign('POST', path, {}, body);
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = http.request(
        {
          host: this.endpoint.hostname,
          port: this.endpoint.port,
          method: 'POST',
          path,
          headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
          timeout: HTTP_TIMEOUT_MS,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
          );
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error('CreateDataChannel timed out')));
      req.on('error', reject);
      req.end(body);
    });
    if (/already terminated/i.test(text)) throw new SessionTerminatedError(text.trim());
    if (status !== 201) throw new Error(`CreateDataChannel answered HTTP ${status}: ${text.slice(0, 200)}`);
    const token = /<TokenValue>([^<]*)<\/TokenValue>/.exec(text)?.[1];
    if (!token) throw new Error('CreateDataChannel response carries no TokenValue');
    return token;
  }

  private async connect(): Promise<WebSocket> {
    const token = await this.createDataChannel();
    const query = { role: 'publish_subscribe' };
    const { host: _host, ...headers } = await this.sign('GET', this.channelPath(), query, '');
    const wsBase = this.endpoint.origin.replace(/^http/, 'ws');
    const url = `${wsBase}${this.channelPath()}?role=publish_subscribe`;
    return await new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(url, {
        perMessageDeflate: false,
        generateMask: zeroMask,
        headers,
        handshakeTimeout: HTTP_TIMEOUT_MS,
      });
      const onError = (err: Error) => fail(err);
      const onResponse = (_req: http.ClientRequest, res: http.IncomingMessage) =>
        fail(new Error(`upgrade refused with HTTP ${res.statusCode}`));
      const fail = (err: Error) => {
        ws.off('error', onError);
        ws.off('unexpected-response', onResponse);
        ws.on('error', () => {});
        ws.terminate();
        reject(err);
      };
      ws.once('error', onError);
      ws.once('unexpected-response', onResponse);
      ws.once('open', () => {
        ws.off('error', onError);
        ws.off('unexpected-response', onResponse);
        ws.send(
          buildOpenDataChannel({
            MessageSchemaVersion: '1.0',
            RequestId: randomUUID(),
            TokenValue: token,
            ClientInstanceId: this.ctx.opts.instanceId,
            ClientId: this.clientId,
          }),
        );
        resolve(ws);
      });
    });
  }
}

/** The agent's first binary message, meant for the service; it takes no sequence number (SPEC 16). */
export function agentSessionState(sessionId: string): Buffer {
  return encodeMessage({
    messageType: MessageType.AgentSessionState,
    sequenceNumber: 0,
    flags: HeaderFlags.Ack,
    payloadType: PayloadType.None,
    payload: Buffer.from(
      JSON.stringify({ SchemaVersion: 1, SessionState: 'Connected', SessionId: sessionId }),
    ),
  });
}

/**
 * The agent clears its pause flag after reconnecting (SPEC 11.2); the data channel only lifts a pause
 * on traffic from the peer, so the agent hands it this start_publication.
 */
export function startPublication(): Buffer {
  return encodeMessage({
    messageType: MessageType.StartPublication,
    sequenceNumber: 0,
    flags: 0,
    payloadType: PayloadType.None,
    payload: Buffer.alloc(0),
  });
}
