/**
 * The client side of the front before the login: SSLRequest and GSSENCRequest get 'N' (plaintext on
 * loopback), then one StartupMessage or CancelRequest. Nothing after it is read here, so bytes a
 * client sends early stay buffered for the splice.
 */
import type { Duplex } from 'node:stream';
import { MessageReader, PgWireError, parseStartupPacket, type StartupPacket } from '../../shared/pg-wire.js';
import { PgFrontError } from './errors.js';

export type LocalFirst =
  | { kind: 'startup'; packet: Extract<StartupPacket, { kind: 'startup' }>; rest: Buffer }
  | { kind: 'cancel'; raw: Buffer };

/** At most one SSLRequest and one GSSENCRequest before the startup packet, as PostgreSQL allows. */
const MAX_NEGOTIATIONS = 2;

/** Resolves with the first real packet; rejects with PgFrontError (protocol / client-closed). */
export function readLocalStartup(local: Duplex): Promise<LocalFirst> {
  return new Promise((resolve, reject) => {
    const reader = new MessageReader();
    let negotiations = 0;
    const done = () => {
      local.off('data', onData);
      local.off('close', onClose);
      local.off('end', onClose);
      local.pause();
    };
    const onClose = () => {
      done();
      reject(
        new PgFrontError('client-closed', '08006', 'the client closed the connection before logging in'),
      );
    };
    const onData = (chunk: Buffer) => {
      reader.push(chunk);
      try {
        for (;;) {
          const raw = reader.nextStartup();
          if (!raw) return;
          const packet = parseStartupPacket(raw);
          if (packet.kind === 'ssl' || packet.kind === 'gssenc') {
            if (++negotiations > MAX_NEGOTIATIONS) {
              throw new PgWireError('PG_WIRE_MALFORMED', 'too many SSL/GSSENC requests', '08P01');
            }
            local.write('N');
            continue;
          }
          done();
          if (packet.kind === 'cancel') resolve({ kind: 'cancel', raw: packet.raw });
          else resolve({ kind: 'startup', packet, rest: reader.takeRemaining() });
          return;
        }
      } catch (err) {
        done();
        const e =
          err instanceof PgWireError ? err : new PgWireError('PG_WIRE_MALFORMED', String(err), '08P01');
        reject(new PgFrontError('protocol', e.sqlstate, e.message, e.fix));
      }
    };
    local.on('data', onData);
    local.once('end', onClose);
    local.once('close', onClose);
  });
}
