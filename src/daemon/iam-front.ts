/**
 * `auth = "iam"` for one tunnel: each local connection goes to the PostgreSQL front (pgfront/) first,
 * which logs in to RDS with an IAM token over TLS; its upstream is an ordinary connection of the
 * tunnel (a new stream of the session), handed over as one end of an in-memory duplex pair.
 */
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { duplexPair } from '../shared/duplex-pair.js';
import { readCaBundle } from './ca-bundle.js';
import type { TunnelConfig } from './config.js';
import { allowedUsersOf, createPgFrontStats, handlePgClient, type PgFrontStats } from './pgfront/index.js';

export interface TokenSource {
  get(t: TunnelConfig): Promise<{ token: string }>;
}

/** What the tunnel's own connection path needs from a socket, for the in-memory end. */
function asLocalSocket(d: Duplex): net.Socket {
  return Object.assign(d, { setNoDelay: () => d }) as unknown as net.Socket;
}

export class IamFront {
  readonly stats: PgFrontStats = createPgFrontStats();

  constructor(
    private readonly config: TunnelConfig,
    private readonly tokens: TokenSource,
    /** The tunnel's own path for a local connection: the upstream stream of each login and cancel. */
    private readonly connect: (socket: net.Socket) => void,
    private readonly log: Logger,
  ) {}

  handle(socket: net.Socket): void {
    const c = this.config;
    void handlePgClient(socket, {
      tunnel: c,
      allowedUsers: allowedUsersOf(c),
      token: (user) => this.tokens.get({ ...c, dbUser: user }).then((t) => t.token),
      openUpstream: async () => {
        const [ours, theirs] = duplexPair();
        this.connect(asLocalSocket(theirs));
        return ours;
      },
      ca: readCaBundle(c),
      servername: c.remoteHost as string,
      logger: this.log,
      stats: this.stats,
    });
  }
}
