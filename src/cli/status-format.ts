/**
 * The text `ssmtun status`: one table with every field the README promises (state, local port, session,
 * mode, agent, connections, bytes each way, RTT, retransmissions, reconnects), the last error and its
 * fix under the tunnel it belongs to. Colour only on a TTY and without NO_COLOR.
 */
import type { TunnelStatus } from '../daemon/tunnel.js';

/** A tunnel as the API lists it (`origin` is added by the API). */
export type StatusRow = TunnelStatus & { origin?: 'config' | 'api' };

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

const COLUMNS = [
  'TUNNEL',
  'STATE',
  'LOCAL',
  'REMOTE',
  'SESSION',
  'MODE',
  'AGENT',
  'CONNS',
  'SENT',
  'RECEIVED',
  'RTT',
  'RETX',
  'RECONN',
] as const;

function cells(t: StatusRow): string[] {
  return [
    t.name,
    t.state,
    `localhost:${t.localPort}`,
    t.remote,
    t.sessionId ?? '-',
    t.mode ?? '-',
    t.agentVersion ?? '-',
    t.waiting > 0 ? `${t.connections}+${t.waiting} waiting` : String(t.connections),
    bytes(t.bytesToRemote),
    bytes(t.bytesFromRemote),
    t.rttMs !== undefined ? `${t.rttMs.toFixed(1)} ms` : '-',
    String(t.retransmissions),
    String(t.reconnects),
  ];
}

export function useColour(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  return !!stream.isTTY && env.NO_COLOR === undefined && env.TERM !== 'dumb';
}

const STATE_COLOUR: Record<string, string> = {
  open: '32',
  listening: '36',
  connecting: '33',
  reconnecting: '33',
  degraded: '33',
  error: '31',
};

export function formatStatus(rows: StatusRow[], colour = false): string {
  if (rows.length === 0) return 'no tunnels (add one to the config file, or: ssmtun add NAME ...)\n';
  const table = [COLUMNS as readonly string[], ...rows.map(cells)];
  const widths = COLUMNS.map((_, i) => Math.max(...table.map((r) => r[i].length)));
  const line = (r: readonly string[], state?: string) =>
    r
      .map((c, i) => {
        const padded = i === r.length - 1 ? c : c.padEnd(widths[i]);
        return colour && i === 1 && state && STATE_COLOUR[state]
          ? `\x1b[${STATE_COLOUR[state]}m${padded}\x1b[0m`
          : padded;
      })
      .join('  ')
      .trimEnd();
  const out = [line(COLUMNS)];
  for (const t of rows) {
    out.push(line(cells(t), t.state));
    const via = t.resolvedTarget && t.resolvedTarget !== t.target ? ` (${t.resolvedTarget})` : '';
    out.push(
      `  target ${t.target}${via}, ${t.sessionsStarted} session${t.sessionsStarted === 1 ? '' : 's'} started${t.origin === 'api' ? ', added over the API' : ''}`,
    );
    if (t.note) out.push(`  ${t.note}`);
    if (t.sessions) {
      const members = t.sessions.map(
        (m) =>
          `#${m.member} ${m.sessionId ?? m.state} (${m.connections} conn${m.connections === 1 ? '' : 's'})`,
      );
      out.push(
        `  sessions ${t.sessions.filter((m) => m.sessionId).length}/${t.poolSize}: ${members.join(', ')}`,
      );
    }
    if (t.logins) {
      const failed = Object.entries(t.logins.loginFailures).filter(([, n]) => n > 0);
      const reasons = failed.map(([r, n]) => `${r} ${n}`).join(', ');
      const refused = failed.reduce((a, [, n]) => a + n, 0);
      out.push(
        `  IAM logins ${t.logins.logins}, refused ${refused}${reasons ? ` (${reasons})` : ''}, cancels ${t.logins.cancels}`,
      );
    }
    if (t.lastOpen) {
      const o = t.lastOpen;
      const tag = o.targetMs >= 1 ? `tag lookup ${Math.round(o.targetMs)} ms, ` : '';
      out.push(
        `  last open ${Math.round(o.totalMs)} ms: ${tag}StartSession ${Math.round(o.startSessionMs)} ms, WebSocket ${Math.round(o.connectMs)} ms${o.preconnected ? ' (connected ahead)' : ''}, handshake ${Math.round(o.handshakeMs)} ms`,
      );
    }
    if (t.listenRetry)
      out.push(`  local port busy: retry ${t.listenRetry.attempt} at ${t.listenRetry.nextAt}`);
    if (t.lastError) {
      out.push(`  last error ${t.lastError.code} at ${t.lastError.at}: ${t.lastError.message}`);
      if (t.lastError.fix) out.push(`    fix: ${t.lastError.fix}`);
    }
  }
  return `${out.join('\n')}\n`;
}
