/**
 * The one request-body reader the simulator's HTTP handlers share (SSM API, CreateDataChannel, /_sim):
 * bounded, so a peer cannot make the simulator buffer without limit.
 */
import type { IncomingMessage } from 'node:http';

export /** Buffers a request body up to `limit` bytes; 'too-large' as soon as it is exceeded. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | 'too-large'> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onError);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.pause();
        resolve('too-large');
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (err?: unknown) => {
      cleanup();
      reject(err instanceof Error ? err : new Error('request aborted'));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onError);
  });
}
