/** `ssmtun status|ls [NAME] [--json] [--watch]`: the running daemon's tunnels. */
import { CLIENT_OPTIONS, CLIENT_OPTIONS_HELP, parseCommand, UsageError } from '../args.js';
import { DaemonClient } from '../client.js';
import { formatStatus, type StatusRow, useColour } from '../status-format.js';
import { usage } from './token.js';

const USAGE = `usage: ssmtun status [NAME] [--json] [--watch]     (also: ssmtun ls)

Shows each tunnel: state, local port, destination, session id, mode, agent version, connections,
bytes each way, RTT, retransmissions, reconnects, and the last error with the command that fixes it.
  --json              the API's answer as it is
  --watch             redraw every second until Ctrl-C
${CLIENT_OPTIONS_HELP}
`;

export async function statusCommand(argv: string[]): Promise<number> {
  const { values, positionals, help } = parseCommand(
    argv,
    { ...CLIENT_OPTIONS, json: { type: 'boolean' }, watch: { type: 'boolean', short: 'w' } },
    USAGE,
  );
  if (help) return usage(USAGE);
  if (positionals.length > 1)
    throw new UsageError(`one tunnel name at most, got ${positionals.join(' ')}`, USAGE);
  const client = await DaemonClient.connect({ config: values.config, apiPort: values['api-port'] });
  const read = async (): Promise<StatusRow[]> =>
    positionals.length === 1
      ? [await client.request<StatusRow>('GET', `/tunnels/${encodeURIComponent(positionals[0])}`)]
      : (await client.request<{ tunnels: StatusRow[] }>('GET', '/tunnels')).tunnels;
  if (values.json) {
    const rows = await read();
    process.stdout.write(
      `${JSON.stringify(positionals.length === 1 ? rows[0] : { tunnels: rows }, null, 2)}\n`,
    );
    return 0;
  }
  const colour = useColour(process.stdout);
  if (!values.watch) {
    process.stdout.write(formatStatus(await read(), colour));
    return 0;
  }
  for (;;) {
    const text = formatStatus(await read(), colour);
    process.stdout.write(process.stdout.isTTY ? `\x1b[H\x1b[2J${text}` : `${text}\n`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}
