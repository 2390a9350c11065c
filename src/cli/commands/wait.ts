/**
 * `ssmtun wait [--timeout 30s]`, like `cloud-sql-proxy wait`: exits 0 as soon as the running daemon
 * answers ready on its API (it listens only after every tunnel has started), 1 when the timeout
 * passes first. For scripts and `ExecStartPost=`-style ordering, as the unit is `Type=exec`.
 */
import { parseArgs } from 'node:util';
import { DEFAULT_API_PORT, defaultConfigPath, loadConfig } from '../../daemon/config.js';

/** `30s`, `500ms`, `2m`, or a plain number of seconds. */
export function parseDuration(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(s.trim());
  if (!m) {
    throw Object.assign(new Error(`invalid --timeout ${JSON.stringify(s)}`), {
      code: 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE',
      fix: 'write it like 30s, 500ms or 2m',
    });
  }
  const n = Number(m[1]);
  return m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000;
}

async function ready(port: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(1000) });
    return res.ok && ((await res.json()) as { ok?: boolean }).ok === true;
  } catch {
    return false;
  }
}

export async function waitCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      timeout: { type: 'string', short: 't' },
      'api-port': { type: 'string' },
      config: { type: 'string', short: 'c' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`usage: ssmtun wait [--timeout 30s] [--api-port N] [--config FILE]

Exits 0 as soon as the running daemon answers ready on its API, 1 when the timeout passes first
(default 30s; also 500ms, 2m). For scripts: ssmtun wait && psql ...
`);
    return 0;
  }
  const timeoutMs = parseDuration(values.timeout ?? '30s');
  let port = Number(values['api-port'] ?? process.env.SSMTUN_API_PORT ?? 0);
  if (!port) {
    port = await loadConfig(values.config ?? defaultConfigPath()).then(
      (c) => c.apiPort,
      () => DEFAULT_API_PORT,
    );
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await ready(port)) return 0;
    const left = deadline - Date.now();
    if (left <= 0) break;
    // Polling is the protocol here: the daemon is another process with nothing to subscribe to yet.
    await new Promise((r) => setTimeout(r, Math.min(100, left)));
  }
  process.stderr.write(
    `ssmtun wait: the daemon did not answer ready on 127.0.0.1:${port} within ${timeoutMs} ms\n` +
      '  fix: start it (ssmtun service status / ssmtun daemon) or check its log (ssmtun service logs)\n',
  );
  return 1;
}
