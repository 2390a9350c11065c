/** The README's install and service material stays true: its config parses, its commands exist. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/daemon/config.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');

function section(title: string): string {
  const start = readme.indexOf(`## ${title}\n`);
  expect(start, `README has no "## ${title}" section`).toBeGreaterThanOrEqual(0);
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
}

describe('README', () => {
  it('the first-tunnel config of "Use it with AWS" is a valid, complete config', () => {
    const toml = /```toml\n([\s\S]*?)```/.exec(section('Use it with AWS'))![1].replace(/^ {3}/gm, '');
    const config = parseConfig(toml, 'README.md');
    expect(config.tunnels).toHaveLength(1);
    expect(config.tunnels[0]).toMatchObject({
      name: 'orders',
      profile: 'prod',
      remoteHost: 'orders.cluster-abc.eu-west-1.rds.amazonaws.com',
      remotePort: 5432,
      localPort: 15432,
      documentName: 'AWS-StartPortForwardingSessionToRemoteHost',
    });
  });

  it('"Run at login" documents exactly the service actions the CLI has', () => {
    const text = section('Run at login');
    for (const action of ['install', 'install --dry-run', 'status', 'logs -f', 'restart', 'uninstall']) {
      expect(text).toContain(`ssmtun service ${action}`);
    }
    expect(text).toContain('--no-sandbox');
    expect(section('Troubleshooting')).toContain('ssmmessages:OpenDataChannel');
    expect(section('Install')).toMatch(/npm pack/);
  });
});
