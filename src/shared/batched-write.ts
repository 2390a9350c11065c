/**
 * Writes coalesced per turn of the event loop: every WebSocket frame or TCP chunk written to one socket
 * in the same turn leaves in one syscall. Data-channel messages carry at most 1 KiB, so one syscall per
 * message would dominate the cost per byte. A leaf module: both the daemon and the simulator use it.
 */
import type { Socket } from 'node:net';
import type WebSocket from 'ws';

/** WebSocket.OPEN, without loading ws just for a constant. */
const OPEN = 1;

const corked = new WeakSet<Socket>();

/** Corks `socket` until the end of this turn of the event loop (once per turn). */
function corkForThisTurn(socket: Socket): void {
  if (corked.has(socket)) return;
  corked.add(socket);
  socket.cork();
  process.nextTick(() => {
    corked.delete(socket);
    socket.uncork();
  });
}

export function sendBatched(ws: WebSocket, frame: Buffer): void {
  if (ws.readyState !== OPEN) return;
  // ws keeps its net.Socket private; corking it is safe (ws writes header and payload with it too).
  const socket = (ws as unknown as { _socket?: Socket })._socket;
  if (socket) corkForThisTurn(socket);
  ws.send(frame, { binary: true });
}

/** socket.write, coalesced with the other writes of this turn; returns what write() returned. */
export function writeBatched(socket: Socket, data: Buffer): boolean {
  corkForThisTurn(socket);
  return socket.write(data);
}

/**
 * For ws clients' `generateMask`. Masking protects HTTP caches from script-controlled bytes sent by
 * browsers; these are native clients (over TLS to AWS), and a zero key lets ws skip copying and
 * XOR-ing every payload on both ends.
 */
export function zeroMask(mask: Buffer): void {
  mask.fill(0);
}
