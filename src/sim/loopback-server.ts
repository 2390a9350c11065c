/** A TCP server on 127.0.0.1 with a free port, closed with every connection it still holds. */
import net from 'node:net';

export interface LoopbackServer {
  port: number;
  /** Idempotent: stops listening and destroys the connections in `sockets`. */
  close(): Promise<void>;
}

export async function startLoopbackServer(
  onConnection: (socket: net.Socket) => void,
  sockets: Set<{ destroy(): void }>,
): Promise<LoopbackServer> {
  const server = net.createServer(onConnection);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  let closing: Promise<void> | undefined;
  return {
    port: (server.address() as net.AddressInfo).port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      return closing;
    },
  };
}
