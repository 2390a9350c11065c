/**
 * Issue 4 end to end, the failure paths: config errors, expired credentials (the real SDK's SSO
 * provider and the service's ExpiredTokenException), basic mode serialisation, shutdown, secrets.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, freePort, pseudoRandomBytes, readExactly, startEchoServer } from '../helpers/net.js';
import {
  countCalls,
  type DaemonProcess,
  runCli,
  type SimProcess,
  startDaemonProcess,
  startSimProcess,
} from './harness.js';

const run = promisify(execFile);

interface Status {
  name: string;
  state: string;
  sessionId?: string;
  mode?: string;
  note?: string;
  connections: number;
  waiting: number;
  lastError?: { code: string; message: string; fix?: string };
}

/** A home directory whose AWS config has an SSO profile with an expired, unrefreshable token. */
function expiredSsoHome(): { home: string; config: string } {
  const home = mkdtempSync(path.join(os.tmpdir(), 'ssmtun-sso-'));
  const cache = path.join(home, '.aws', 'sso', 'cache');
  mkdirSync(cache, { recursive: true });
  const config = path.join(home, '.aws', 'config');
  writeFileSync(
    config,
    [
      '[profile expired-sso]',
      'sso_session = corp',
      'sso_account_id = 123456789012',
      'sso_role_name = ReadOnly',
      '',
      '[sso-session corp]',
      'sso_start_url = https://corp.awsapps.example/start',
      'sso_region = us-east-1',
      '',
    ].join('\n'),
  );
  writeFileSync(
    path.join(cache, `${createHash('sha1').update('corp').digest('hex')}.json`),
    JSON.stringify({ accessToken: 'expired', expiresAt: '2020-01-01T00:00:00Z', region: 'us-east-1' }),
  );
  return { home, config };
}

describe('daemon failure paths', () => {
  let sim: SimProcess;
  let daemon: DaemonProcess;
  let echo: Awaited<ReturnType<typeof startEchoServer>>;
  const ports = { echo: 0, sso: 0, expired: 0, legacy: 0 };

  beforeAll(async () => {
    [sim, echo] = await Promise.all([startSimProcess(['--no-pacing']), startEchoServer()]);
    for (const k of Object.keys(ports) as Array<keyof typeof ports>) ports[k] = await freePort();
    const sso = expiredSsoHome();
    daemon = await startDaemonProcess(
      sim,
      [
        { name: 'echo', localPort: ports.echo, remotePort: echo.port },
        {
          name: 'sso',
          localPort: ports.sso,
          remotePort: echo.port,
          remoteHost: 'orders.cluster-c0ffee.us-east-1.rds.amazonaws.com',
          extra: 'profile = "expired-sso"\ndb_user = "app_readonly"',
        },
        { name: 'expired', localPort: ports.expired, remotePort: echo.port, target: sim.instances[0].id },
        { name: 'legacy', localPort: ports.legacy, remotePort: echo.port, targetTag: 'Name=legacy' },
      ],
      { HOME: sso.home, AWS_CONFIG_FILE: sso.config, SSMTUN_LOG_LEVEL: 'trace' },
    );
  }, 60_000);

  afterAll(async () => {
    await daemon?.stop();
    await Promise.all([sim?.stop(), echo?.close()]);
  });

  const status = (name: string) => daemon.api<Status>(`/tunnels/${name}`);

  async function echoOnce(port: number, size: number, seed: number): Promise<boolean> {
    const sock = await connect(port);
    const data = pseudoRandomBytes(size, seed);
    sock.write(data);
    const back = await readExactly(sock, size);
    sock.destroy();
    return back.equals(data);
  }

  async function closedWithoutData(port: number): Promise<void> {
    const sock = await connect(port);
    sock.on('error', () => {}); // a reset is one of the expected ways for it to close
    let got = 0;
    sock.on('data', (d) => {
      got += d.length;
    });
    sock.write('hello');
    await new Promise<void>((r) => sock.once('close', () => r()));
    expect(got).toBe(0);
  }

  it('an expired SSO login closes the connection and the status names the command that fixes it', async () => {
    await closedWithoutData(ports.sso);
    const s = await status('sso');
    expect(s.state).toBe('error');
    expect(s.lastError).toMatchObject({
      code: 'SSO_LOGIN_REQUIRED',
      fix: 'run: aws sso login --profile expired-sso',
    });
    // Another tunnel is untouched by it.
    expect(await echoOnce(ports.echo, 50_000, 1)).toBe(true);
  });

  it('a database login with an expired SSO login fails clearly with the fixing command', async () => {
    const r = await runCli(['token', 'sso'], daemon.env);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('AWS SSO session expired');
    expect(r.stderr).toContain('fix: run: aws sso login --profile expired-sso');
  });

  it('ExpiredTokenException from the service is shown as expired credentials; the next connection retries', async () => {
    await sim.control('/_sim/target-error', { target: sim.instances[0].id, error: 'ExpiredTokenException' });
    try {
      await closedWithoutData(ports.expired);
      const s = await status('expired');
      expect(s.lastError?.code).toBe('CREDENTIALS_EXPIRED');
      expect(s.lastError?.fix).toMatch(/aws sso login|refresh/);
    } finally {
      await sim.control('/_sim/target-error', { target: sim.instances[0].id, error: null });
    }
    expect(await echoOnce(ports.expired, 10_000, 2)).toBe(true);
    expect((await status('expired')).state).toBe('open');
  });

  it('basic mode (agent 3.0.161.0) serialises connections and says so in the status', async () => {
    const first = await connect(ports.legacy);
    const a = pseudoRandomBytes(30_000, 3);
    first.write(a);
    expect((await readExactly(first, a.length)).equals(a)).toBe(true);
    const second = await connect(ports.legacy);
    const b = pseudoRandomBytes(30_000, 4);
    second.write(b);
    await expect.poll(async () => (await status('legacy')).waiting).toBe(1);
    const s = await status('legacy');
    expect(s.mode).toBe('basic');
    expect(s.note).toMatch(/one connection at a time/);
    first.destroy();
    expect((await readExactly(second, b.length)).equals(b)).toBe(true);
    second.destroy();
  });

  it('a session the service ends for inactivity leaves the tunnel listening, and the next connection reopens', async () => {
    expect(await echoOnce(ports.echo, 1000, 6)).toBe(true);
    const sid = (await status('echo')).sessionId!;
    await sim.control('/_sim/terminate', { sessionId: sid, reason: 'idle' });
    await expect.poll(async () => (await status('echo')).lastError?.code).toBe('SESSION_CLOSED');
    const s = await status('echo');
    expect(s.state).toBe('listening');
    expect(s.lastError?.message).toMatch(/inactivity/);
    expect(await echoOnce(ports.echo, 1000, 7)).toBe(true);
    expect((await status('echo')).sessionId).not.toBe(sid);
  });

  it('logs never contain a session token, even at trace level', async () => {
    const st = await sim.state();
    const tokens = (st as unknown as { issuedTokens: string[] }).issuedTokens;
    expect(tokens.length).toBeGreaterThan(2);
    const log = daemon.rawLog();
    expect(log.length).toBeGreaterThan(1000);
    for (const t of tokens) expect(log.includes(t)).toBe(false);
  });

  it('a reload of a group-writable config logs a warning with chmod 600 as the fix', async () => {
    chmodSync(daemon.configFile, 0o664);
    try {
      await daemon.api('/reload', 'POST');
      const line = await daemon.waitForLog((l) => /writable by its group/.test(String(l.msg)));
      expect(line).toMatchObject({ level: 40, fix: `Run: chmod 600 '${daemon.configFile}'` });
    } finally {
      chmodSync(daemon.configFile, 0o644);
    }
  });

  it('SIGTERM terminates every open session and exits 0', async () => {
    expect(await echoOnce(ports.echo, 1000, 5)).toBe(true);
    const open = (await daemon.api<{ tunnels: Status[] }>('/tunnels')).tunnels.filter((t) => t.sessionId);
    expect(open.length).toBeGreaterThanOrEqual(2);
    const before = countCalls(await sim.state(), 'TerminateSession');
    expect(await daemon.stop()).toBe(0);
    const st = await sim.state();
    expect(countCalls(st, 'TerminateSession')).toBe(before + open.length);
    for (const t of open)
      expect(st.sessions.find((s) => s.sessionId === t.sessionId)?.status).toBe('Terminated');
  });
});

describe('config errors', () => {
  it('the daemon refuses a bad config with file:line and the fix, exit code 78', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ssmtun-badcfg-'));
    const file = path.join(dir, 'config.toml');
    writeFileSync(
      file,
      '[tunnels.db]\nregion = "us-east-1"\ntarget = "i-0123456789abcdef0"\nremote_prot = 5432\nlocal_port = 15432\n',
    );
    const err = await run(process.execPath, [
      '--import',
      'tsx',
      'src/cli/index.ts',
      'daemon',
      '--config',
      file,
    ]).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    expect(err?.code).toBe(78);
    expect(err?.stderr).toContain(`${file}:4`);
    expect(err?.stderr).toMatch(/remote_prot/);
    expect(err?.stderr).toMatch(/remote_port/);
  });
});
