/**
 * A TCP (ws:) or TLS (wss:) connection to where the data channel's stream URL is expected, opened
 * while StartSession or ResumeSession is on the wire. The WebSocket upgrade then costs one round trip
 * after the call instead of two (three or four over TLS on a real link). It is used only when the
 * stream URL that comes back has the same origin, at most once, and dropped unused after a while; a
 * pre-connection that fails costs nothing, since the WebSocket then dials as it always did.
 */
import net from 'node:net';
import tls from 'node:tls';

/** A stream URL comes back within seconds; a socket unused for longer is not worth holding. */
const UNUSED_MS = 20_000;

export class PreConnection {
  private socket: net.Socket | undefined;
  private readonly timer: NodeJS.Timeout;
  /** Resolves true once connected (TLS included), false if that failed. */
  readonly settled: Promise<boolean>;

  /** `tlsOptions` only for tests (a CA of their own); production trusts Node's roots, like ws. */
  constructor(
    readonly origin: string,
    tlsOptions: Pick<tls.ConnectionOptions, 'ca'> = {},
  ) {
    const url = new URL(origin);
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const secure = url.protocol === 'wss:';
    const port = Number(url.port) || (secure ? 443 : 80);
    const socket = secure
      ? tls.connect({
          host,
          port,
          // As ws sets it: SNI and the certificate check by name, none for an IP literal.
          servername: net.isIP(host) ? '' : host,
          ALPNProtocols: ['http/1.1'],
          ...tlsOptions,
        })
      : net.connect({ host, port });
    socket.setNoDelay(true);
    this.settled = new Promise((resolve) => {
      socket.once(secure ? 'secureConnect' : 'connect', () => resolve(true));
      socket.once('close', () => resolve(false));
    });
    socket.once('error', this.onError);
    socket.once('close', this.onClose);
    this.socket = socket;
    this.timer = setTimeout(() => this.dispose(), UNUSED_MS);
    this.timer.unref();
  }

  /** The socket (once) if `streamUrl` points where it was opened to and it is still usable. */
  take(streamUrl: string): net.Socket | undefined {
    const s = this.socket;
    this.socket = undefined;
    clearTimeout(this.timer);
    if (!s) return undefined;
    let origin: string | undefined;
    try {
      origin = new URL(streamUrl).origin;
    } catch {
      origin = undefined;
    }
    if (origin !== this.origin || s.destroyed) {
      s.destroy();
      return undefined;
    }
    // From here the WebSocket owns it, and its own error handling with it (only ours come off:
    // the TLS socket has 'close' listeners of its own).
    s.off('error', this.onError);
    s.off('close', this.onClose);
    return s;
  }

  private readonly onError = () => this.dispose();
  private readonly onClose = () => {
    this.socket = undefined;
    clearTimeout(this.timer);
  };

  dispose(): void {
    clearTimeout(this.timer);
    this.socket?.destroy();
    this.socket = undefined;
  }
}

/**
 * Where the next stream URL will point: the last one this gateway was given, else the public
 * ssmmessages endpoint of the region when the SSM endpoint is AWS's own (a custom or VPC endpoint
 * gives no such promise, so nothing is guessed for it).
 */
export function expectedStreamOrigin(
  last: string | undefined,
  region: string,
  customEndpoint: boolean,
): string | undefined {
  if (last) return last;
  if (customEndpoint) return undefined;
  const suffix = region.startsWith('cn-') ? 'amazonaws.com.cn' : 'amazonaws.com';
  return `wss://ssmmessages.${region}.${suffix}`;
}
