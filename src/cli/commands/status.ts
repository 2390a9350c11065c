/** `ssmtun status`: asks the running daemon's API and prints one line per tunnel. */
import { CLIENT_OPTIONS, CLIENT_OPTIONS_HELP, parseCommand } from '../args.js';
import { DaemonClient } from '../client.js';
import { usage } from './token.js';

const USAGE = `usage: ssmtun status [--json]

Lists the running daemon's tunnels: state, local port, destination, mode, connections, last error.
  --json              the API's answer as it is
${CLIENT_OPTIONS_HELP}
`;

export async function statusCommand(argv: string[]): Promise<number> {
  const { values, help } = parseCommand(argv, { ...CLIENT_OPTIONS, json: { type: 'boolean' } }, USAGE);
  if (help) return usage(USAGE);
  const client = await DaemonClient.connect({ config: values.config, apiPort: values['api-port'] });
  const body = await client.request<{ tunnels: Array<Record<string, unknown>> }>('GET', '/tunnels');
  if (values.json) {
    process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
    return 0;
  }
  for (const t of body.tunnels) {
    const err = t.lastError as { code: string; message: string; fix?: string } | undefined;
    process.stdout.write(
      `${String(t.name).padEnd(20)} ${String(t.state).padEnd(12)} localhost:${t.localPort} -> ${t.remote}` +
        `${t.mode ? ` [${t.mode}]` : ''} conns=${t.connections}` +
        `${err ? `\n${' '.repeat(21)}last error ${err.code}: ${err.message}${err.fix ? ` (fix: ${err.fix})` : ''}` : ''}\n`,
    );
  }
  return 0;
}
