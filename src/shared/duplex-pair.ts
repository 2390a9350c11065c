/**
 * Two connected in-memory Duplex streams, like the two ends of a socket (Node 20 has no
 * stream.duplexPair): what is written on one end is read on the other. Back-pressure holds both ways:
 * a write is acknowledged only once the other end's reader has taken it or has room for it, so a slow
 * reader stalls the writer instead of buffering without bound. end() on one side ends the other's
 * readable side; destroy() on either side destroys both, as a reset connection would, while a side that
 * closes cleanly (ended both ways, autoDestroy) leaves the other to finish reading.
 */
import { Duplex, type DuplexOptions } from 'node:stream';

class PairEnd extends Duplex {
  peer!: PairEnd;
  /** Write callback of the peer, held while this end's readable buffer is full. */
  private blockedWrite: ((err?: Error | null) => void) | undefined;

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    const peer = this.peer;
    if (peer.destroyed) {
      callback(new Error('the other end of the duplex pair is closed'));
      return;
    }
    if (peer.push(chunk)) callback();
    else peer.blockedWrite = callback;
  }

  override _final(callback: (err?: Error | null) => void): void {
    if (!this.peer.destroyed) this.peer.push(null);
    callback();
  }

  override _read(): void {
    const resume = this.blockedWrite;
    this.blockedWrite = undefined;
    resume?.();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    // The writer is destroyed next anyway; failing its pending write would only add an 'error' event.
    const resume = this.blockedWrite;
    this.blockedWrite = undefined;
    resume?.();
    // autoDestroy after a clean close in both directions must not cut the peer short: it may not
    // have read its last bytes yet, and it closes itself the same way once it has.
    const clean = !err && this.readableEnded && this.writableFinished;
    if (!clean && !this.peer.destroyed) this.peer.destroy();
    callback(err);
  }
}

/** [a, b]: bytes written to a are read from b and the other way round. */
export function duplexPair(options: DuplexOptions = {}): [Duplex, Duplex] {
  const a = new PairEnd(options);
  const b = new PairEnd(options);
  a.peer = b;
  b.peer = a;
  return [a, b];
}
