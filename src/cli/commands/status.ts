/** `ssmtun status`: asks the running daemon's API and prints one line per tunnel. */
import { parseArgs } from 'node:util';

export async function statusCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { 'api-port': { type: 'string' }, json: { type: 'boolean' } },
  });
  const port = Number(values['api-port'] ?? process.env.SSMTUN_API_PORT ?? 7711);
  let body: { tunnels: Array<Record<string, unknown>> };
  try {
    const res = await fetch(`http://127.0.0.1:${port}/tunnels`);
    body = (await res.json()) as typeof body;
  } catch (e) {
    process.stderr.write(
      `ssmtun status: no daemon answers on 127.0.0.1:${port} (${(e as Error).message})\n  fix: start it with: ssmtun daemon\n`,
    );
    return 1;
  }
  if (values.json) {
    process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
    return 0;
  }
  for (const t of body.tunnels) {
    const err = t.lastError as { code: string; message: string; fix?: string } | undefined;
    const retry = t.listenRetry as { attempt: number; nextAt: string } | undefined;
    process.stdout.write(
      `${String(t.name).padEnd(20)} ${String(t.state).padEnd(12)} localhost:${t.localPort} -> ${t.remote}` +
        `${t.mode ? ` [${t.mode}]` : ''} conns=${t.connections}` +
        `${err ? `\n${' '.repeat(21)}last error ${err.code}: ${err.message}${err.fix ? ` (fix: ${err.fix})` : ''}` : ''}` +
        `${retry ? `\n${' '.repeat(21)}port busy: retry ${retry.attempt} at ${retry.nextAt}` : ''}\n`,
    );
  }
  return 0;
}
