import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DaemonClient } from '../../src/cli/client.js';
import { freePort } from '../helpers/net.js';

const closers: Array<() => void> = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

function env(): NodeJS.ProcessEnv {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ssmtun-client-'));
  closers.push(() => rmSync(dir, { recursive: true, force: true }));
  return {
    XDG_RUNTIME_DIR: path.join(dir, 'run'),
    XDG_STATE_HOME: path.join(dir, 'state'),
    SSMTUN_CONFIG: path.join(dir, 'none.toml'),
  };
}

describe('finding the daemon', () => {
  it('says so when another program answers on the API port, instead of trusting it', async () => {
    const other = http.createServer((_req, res) => res.end('{"tunnels":[]}'));
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    closers.push(() => other.close());
    const port = (other.address() as AddressInfo).port;
    await expect(DaemonClient.connect({ apiPort: port, env: env() })).rejects.toMatchObject({
      code: 'NOT_SSMTUN',
      message: expect.stringContaining(`127.0.0.1:${port}`),
    });
  });

  it('reports a daemon that is not running with the command that starts it', async () => {
    await expect(DaemonClient.connect({ apiPort: await freePort(), env: env() })).rejects.toMatchObject({
      code: 'DAEMON_NOT_RUNNING',
      fix: expect.stringContaining('ssmtun daemon'),
    });
  });
});
