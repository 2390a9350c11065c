/**
 * Time to first byte: a 64-byte message on a new connection, timed from before connect() to the first
 * echoed byte.
 *   lazy  no session yet: ssmtun's tunnel is closed through its API first, so the figure includes
 *         StartSession, the WebSocket, the handshake and the agent dialling the destination. For a
 *         cmd: client it is StartSession + starting the program + its port + the first byte.
 *   warm  the session is already open: just the new stream and one round trip.
 */
import type { Client } from './clients.js';
import { timeToFirstByte } from './net.js';
import type { SectionName } from './setup.js';
import { withTimeout } from './util.js';

export async function lazyOpen(client: Client, section: SectionName): Promise<number | undefined> {
  if (!client.lazyFirstByte) return undefined;
  return await withTimeout(client.lazyFirstByte(section), 60_000, `${client.name} lazy open`);
}

export async function warmFirstByte(port: number): Promise<number> {
  return await timeToFirstByte(port, 30_000);
}
