/**
 * Small HTTP and WebSocket helpers the gateway's handlers share: the data-channel path, JSON answers
 * with a request id like AWS's, refusing an upgrade before it happens, and the
 * bounded lists the gateway keeps for tests.
 */

import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { type RawData, WebSocket } from 'ws';

const PATH_RE = /^\/v1\/data-channel\/([A-Za-z0-9._:@-]{1,128})$/;
export const EMPTY = Buffer.alloc(0);

export function sessionIdFromUrl(url: string | undefined): string | undefined {
  if (!url) return undefined;
  const q = url.indexOf('?');
  const m = PATH_RE.exec(q < 0 ? url : url.slice(0, q));
  return m?.[1];
}

export function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

export function isOpen(ws: WebSocket | undefined): ws is WebSocket {
  return ws !== undefined && ws.readyState === WebSocket.OPEN;
}

export function pushBounded<T>(list: T[], item: T, max: number): void {
  list.push(item);
  if (list.length > max) list.splice(0, list.length - max);
}

export function refuseUpgrade(socket: Duplex, status: number, code: string, message: string): void {
  if (socket.destroyed) return;
  const body = JSON.stringify({ code, message });
  const reason = status === 403 ? 'Forbidden' : status === 400 ? 'Bad Request' : 'Internal Server Error';
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  contentType = 'application/json',
): void {
  if (res.headersSent || res.destroyed) return;
  const payload = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  res.statusCode = status;
  res.setHeader('content-type', contentType);
  res.setHeader('content-length', payload.length);
  res.setHeader('x-amzn-requestid', randomUUID());
  res.end(payload);
}
