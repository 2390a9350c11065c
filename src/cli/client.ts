/**
 * Finds the user's running daemon and talks to it: first its unix socket (no key needed: the socket's
 * 0700 directory already proves it is ours), else 127.0.0.1:<api_port> from the config with the API key
 * from the state dir. Every answer is checked to come from ssmtun, so a different program that happens
 * to listen on 7711 is reported as such instead of being trusted with the request.
 */
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { parse } from 'smol-toml';
import { ApiKeyError, readApiKey } from '../api/auth.js';
import { defaultConfigPath } from '../daemon/config.js';
import { apiKeyFile, apiSocketPath } from '../daemon/paths.js';

export class CliError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly fix?: string,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export interface ClientOptions {
  config?: string;
  apiPort?: string | number;
  env?: NodeJS.ProcessEnv;
}

type Where = { socketPath: string } | { port: number };

interface Reply {
  status: number;
  body: unknown;
}

const TIMEOUT_MS = 30_000;

function send(where: Where, method: string, path: string, key?: string, body?: unknown): Promise<Reply> {
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        ...('socketPath' in where
          ? { socketPath: where.socketPath }
          : { host: '127.0.0.1', port: where.port }),
        method,
        path,
        headers: {
          host: 'localhost',
          accept: 'application/json',
          ...(key ? { authorization: `Bearer ${key}` } : {}),
          ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
        },
        timeout: TIMEOUT_MS,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {}
          resolve({ status: res.statusCode ?? 0, body });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${TIMEOUT_MS / 1000} s`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** api_port from the config without validating the rest: a half-edited file must not hide the daemon. */
function configApiPort(file: string): number | undefined {
  try {
    const doc = parse(readFileSync(file, 'utf8')) as { daemon?: { api_port?: unknown } };
    const p = doc.daemon?.api_port;
    return typeof p === 'number' || typeof p === 'bigint' ? Number(p) : undefined;
  } catch {
    return undefined;
  }
}

export class DaemonClient {
  private constructor(
    private readonly where: Where,
    private readonly key: string | undefined,
    private readonly keyError: ApiKeyError | undefined,
    readonly description: string,
  ) {}

  static async connect(opts: ClientOptions = {}): Promise<DaemonClient> {
    const env = opts.env ?? process.env;
    const tried: string[] = [];
    const socketPath = apiSocketPath(env);
    if (opts.apiPort === undefined && existsSync(socketPath)) {
      const where = { socketPath };
      if (await isSsmtun(where))
        return new DaemonClient(where, undefined, undefined, `unix socket ${socketPath}`);
      tried.push(`unix socket ${socketPath}`);
    }
    const configFile = opts.config ?? defaultConfigPath(env);
    const port = Number(opts.apiPort ?? env.SSMTUN_API_PORT ?? configApiPort(configFile) ?? 7711);
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new CliError('BAD_API_PORT', `API port ${JSON.stringify(opts.apiPort)} is not a port number`);
    }
    const where = { port };
    let health: Reply | undefined;
    try {
      health = await send(where, 'GET', '/health');
    } catch {}
    tried.push(`127.0.0.1:${port}`);
    if (!health) {
      throw new CliError(
        'DAEMON_NOT_RUNNING',
        `no ssmtun daemon is running (tried ${tried.join(' and ')})`,
        'start it: ssmtun daemon (or install it as a login service: ssmtun service install)',
      );
    }
    if (!isSsmtunHealth(health)) {
      throw new CliError(
        'NOT_SSMTUN',
        `something that is not an ssmtun daemon answers on 127.0.0.1:${port}`,
        `set [daemon] api_port in ${configFile} to a free port and restart ssmtun, or pass --api-port`,
      );
    }
    let key: string | undefined;
    let keyError: ApiKeyError | undefined;
    try {
      key = readApiKey(apiKeyFile(env));
    } catch (e) {
      if (!(e instanceof ApiKeyError)) throw e;
      keyError = e;
    }
    return new DaemonClient(where, key, keyError, `127.0.0.1:${port}`);
  }

  request<T>(method: 'GET' | 'POST' | 'DELETE' | 'PATCH', path: string): Promise<T> {
    return this.requestJson<T>(method, path, undefined);
  }

  async requestJson<T>(method: 'GET' | 'POST' | 'DELETE' | 'PATCH', path: string, body: unknown): Promise<T> {
    let reply: Reply;
    try {
      reply = await send(this.where, method, path, this.key, body);
    } catch (e) {
      throw new CliError(
        'DAEMON_UNREACHABLE',
        `the daemon at ${this.description} stopped answering: ${(e as Error).message}`,
        'check it with: ssmtun status',
      );
    }
    if (reply.status >= 200 && reply.status < 300) return reply.body as T;
    const b = (typeof reply.body === 'object' && reply.body !== null ? reply.body : {}) as {
      code?: string;
      message?: string;
      fix?: string;
    };
    if (reply.status === 401 && this.keyError) {
      throw new CliError(this.keyError.code, this.keyError.message, this.keyError.fix);
    }
    throw new CliError(b.code ?? `HTTP_${reply.status}`, b.message ?? `HTTP ${reply.status}`, b.fix);
  }
}

function isSsmtunHealth(r: Reply): boolean {
  return r.status === 200 && (r.body as { service?: unknown } | null)?.service === 'ssmtun';
}

async function isSsmtun(where: Where): Promise<boolean> {
  try {
    return isSsmtunHealth(await send(where, 'GET', '/health'));
  } catch {
    return false;
  }
}
