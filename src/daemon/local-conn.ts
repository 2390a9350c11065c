/**
 * Local TCP connections of a tunnel and the policy for the bytes queued towards them. The agent has no
 * flow control (SPEC 7.7 and 16): it keeps sending whether we acknowledge or not, and every message we
 * refuse costs 100 ms of its single-front resend. So the session acknowledges everything that arrives,
 * each connection buffers what its reader has not taken yet, and a connection whose buffer passes its
 * cap is reset on its own (RST to the client, FIN of its stream to the agent) rather than slowing
 * every other connection of the session.
 */
import type net from 'node:net';

/** Large enough that a reader merely slower than the agent (~1 MB/s per session) for a while is kept. */
export const DEFAULT_MAX_BUFFER_BYTES = 64 * 1024 * 1024;
export const DEFAULT_MAX_CONNECTIONS = 512;

export interface Conn {
  socket: net.Socket;
  /** The session's id for it (smux stream id, or the basic-mode connection number) once attached. */
  id?: number;
}

/** Bytes written to the socket that its reader has not taken yet (Node's user-space queue). */
export function queuedBytes(conn: Conn): number {
  return conn.socket.writableLength;
}

/**
 * Ends a local socket with RST rather than FIN: the client must be able to tell a cut-off transfer
 * from a complete one.
 */
export function resetSocket(socket: net.Socket): void {
  if (socket.destroyed) return;
  if (typeof socket.resetAndDestroy === 'function' && socket.readyState !== 'opening') {
    try {
      socket.resetAndDestroy();
      return;
    } catch {
      // Not a TCP handle (or already gone): a plain destroy still ends it.
    }
  }
  socket.destroy();
}
