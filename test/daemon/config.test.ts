import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ConfigError,
  type ConfigIssue,
  DOCUMENT_LOCAL,
  DOCUMENT_REMOTE_HOST,
  defaultConfigPath,
  loadConfig,
  parseConfig,
  validateTunnel,
} from '../../src/daemon/config.js';

const FILE = '/home/me/.config/ssmtun/config.toml';

/** Lines joined with newlines, so a test's line numbers are the array positions plus one. */
const doc = (...lines: string[]): string => lines.join('\n');

function configError(text: string): ConfigError {
  try {
    parseConfig(text, FILE);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

/** The single issue reported for `text`, checked to sit at `line` and to be printed as file:line. */
function issueAt(text: string, line: number): ConfigIssue {
  const err = configError(text);
  expect(err.issues, err.message).toHaveLength(1);
  const [issue] = err.issues;
  expect(issue.file).toBe(FILE);
  expect(issue.line).toBe(line);
  expect(err.message.startsWith(`${FILE}:${line}: `)).toBe(true);
  expect(err.message).toContain(issue.fix);
  return issue;
}

describe('parseConfig: valid files', () => {
  it('parses the full example and derives the document and parameters', () => {
    const cfg = parseConfig(
      doc(
        '[daemon]',
        'api_port = 7800',
        'log_level = "debug"',
        '',
        '[tunnels.orders-db]',
        'profile = "prod"',
        'region = "eu-west-1"',
        'target = "i-0123456789abcdef0"',
        'remote_host = "orders.cluster-abc.eu-west-1.rds.amazonaws.com"',
        'remote_port = 5432',
        'local_port = 15432',
        'bind = ["127.0.0.1"]',
        'db_user = "app_readonly"',
        'db_name = "orders"',
        'engine = "postgres"',
        'idle_timeout = "90s"',
        'endpoint = "http://127.0.0.1:4566"',
        'lazy = false',
      ),
      FILE,
    );
    expect(cfg.apiPort).toBe(7800);
    expect(cfg.logLevel).toBe('debug');
    expect(cfg.file).toBe(FILE);
    expect(cfg.tunnels).toEqual([
      {
        name: 'orders-db',
        profile: 'prod',
        region: 'eu-west-1',
        target: { kind: 'instance', instanceId: 'i-0123456789abcdef0' },
        remoteHost: 'orders.cluster-abc.eu-west-1.rds.amazonaws.com',
        remotePort: 5432,
        localPort: 15432,
        bind: ['127.0.0.1'],
        dbUser: 'app_readonly',
        dbName: 'orders',
        engine: 'postgres',
        sslmode: 'verify-full',
        idleTimeoutMs: 90_000,
        endpoint: 'http://127.0.0.1:4566',
        lazy: false,
        documentName: DOCUMENT_REMOTE_HOST,
        parameters: {
          host: ['orders.cluster-abc.eu-west-1.rds.amazonaws.com'],
          portNumber: ['5432'],
          localPortNumber: ['15432'],
        },
        source: { file: FILE, line: 5 },
      },
    ]);
  });

  it('applies defaults and uses the local document without remote_host', () => {
    const cfg = parseConfig(
      doc(
        '# comment',
        '[tunnels."orders.replica"]',
        'region = "us-east-1"',
        'target_tag = "Name=bastion host"',
        'remote_port = 3306',
        'local_port = 13306',
        'engine = "mysql"',
      ),
      FILE,
    );
    expect(cfg.apiPort).toBe(7711);
    expect(cfg.logLevel).toBe('info');
    const [t] = cfg.tunnels;
    expect(t.name).toBe('orders.replica');
    expect(t.target).toEqual({ kind: 'tag', key: 'Name', value: 'bastion host' });
    expect(t.bind).toEqual(['127.0.0.1', '::1']);
    expect(t.engine).toBe('mysql');
    expect(t.idleTimeoutMs).toBe(600_000);
    expect(t.lazy).toBe(true);
    expect(t.documentName).toBe(DOCUMENT_LOCAL);
    expect(t.parameters).toEqual({ portNumber: ['3306'], localPortNumber: ['13306'] });
    expect(t.source).toEqual({ file: FILE, line: 2 });
    for (const key of ['profile', 'remoteHost', 'dbUser', 'dbName', 'endpoint'])
      expect(t).not.toHaveProperty(key);
  });

  it('accepts an empty file and an empty [tunnels] table', () => {
    expect(parseConfig('', FILE)).toEqual({ apiPort: 7711, logLevel: 'info', tunnels: [], file: FILE });
    expect(parseConfig('[tunnels]\n', FILE).tunnels).toEqual([]);
    expect(parseConfig('\uFEFF[daemon]\napi_port = 7000\n', FILE).apiPort).toBe(7000);
  });

  it.each([
    ['"90s"', 90_000],
    ['"10m"', 600_000],
    ['"1h"', 3_600_000],
    ['"1h30m"', 5_400_000],
    ['"0"', 0],
    ['120', 120_000],
    ['0', 0],
  ])('idle_timeout = %s is %i ms', (value, ms) => {
    const cfg = parseConfig(
      doc(
        '[tunnels.db]',
        'region = "eu-west-1"',
        'target = "mi-0123456789abcdef0"',
        'remote_port = 5432',
        'local_port = 15432',
        `idle_timeout = ${value}`,
      ),
      FILE,
    );
    expect(cfg.tunnels[0].idleTimeoutMs).toBe(ms);
  });

  it('accepts every loopback spelling in bind', () => {
    const cfg = parseConfig(
      doc(
        '[tunnels.db]',
        'region = "eu-west-1"',
        'target = "i-0123456789abcdef0"',
        'remote_port = 5432',
        'local_port = 15432',
        'bind = ["127.0.0.2", "::1", "localhost", "0:0:0:0:0:0:0:1"]',
      ),
      FILE,
    );
    expect(cfg.tunnels[0].bind).toEqual(['127.0.0.2', '::1', 'localhost', '0:0:0:0:0:0:0:1']);
  });

  it('lists tunnels in file order and finds lines of dotted and inline definitions', () => {
    const text = doc(
      'tunnels.b.region = "eu-west-1"',
      'tunnels.b.target = "i-0123456789abcdef0"',
      'tunnels.b.remote_port = 5432',
      'tunnels.b.local_port = 15001',
      '[tunnels.2]',
      'region = "eu-west-1"',
      'target = "i-0123456789abcdef0"',
      'remote_port = 5432',
      'local_port = 15002',
    );
    const cfg = parseConfig(text, FILE);
    expect(cfg.tunnels.map((t) => [t.name, t.source.line])).toEqual([
      ['b', 1],
      ['2', 5],
    ]);

    const inline = doc(
      '[tunnels]',
      'a = { region = "eu-west-1", target = "i-0123456789abcdef0", remote_port = 5432, local_port = 15001 }',
      'b = { region = "eu-west-1", target = "i-0123456789abcdef0", remote_port = 5432,',
      '      local_port = "15002" }',
    );
    const issue = issueAt(inline, 4);
    expect(issue.key).toBe('tunnels.b.local_port');
  });
});

describe('defaultConfigPath', () => {
  it('prefers SSMTUN_CONFIG, then XDG_CONFIG_HOME, then ~/.config', () => {
    const env = { SSMTUN_CONFIG: '/etc/ssmtun.toml', XDG_CONFIG_HOME: '/xdg' };
    expect(defaultConfigPath(env, '/home/me')).toBe('/etc/ssmtun.toml');
    expect(defaultConfigPath({ XDG_CONFIG_HOME: '/xdg' }, '/home/me')).toBe('/xdg/ssmtun/config.toml');
    expect(defaultConfigPath({}, '/home/me')).toBe('/home/me/.config/ssmtun/config.toml');
    expect(defaultConfigPath({ SSMTUN_CONFIG: '', XDG_CONFIG_HOME: '' }, '/home/me')).toBe(
      '/home/me/.config/ssmtun/config.toml',
    );
    // The XDG base directory spec says relative paths are to be ignored.
    expect(defaultConfigPath({ XDG_CONFIG_HOME: 'rel' }, '/home/me')).toBe(
      '/home/me/.config/ssmtun/config.toml',
    );
  });
});

describe('loadConfig', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'ssmtun-config-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads and parses a file', async () => {
    const file = path.join(dir, 'ok.toml');
    await writeFile(file, '[daemon]\nlog_level = "warn"\n');
    const cfg = await loadConfig(file);
    expect(cfg).toEqual({ apiPort: 7711, logLevel: 'warn', tunnels: [], file });
  });

  it('explains how to create a missing file', async () => {
    const file = path.join(dir, 'nested', 'config.toml');
    const err = await loadConfig(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    const { code, issues, message } = err as ConfigError;
    expect(code).toBe('CONFIG_INVALID');
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatchObject({ file, line: 0, message: 'config file not found' });
    expect(message.startsWith(`${file}: config file not found. `)).toBe(true);
    expect(issues[0].fix).toContain(`mkdir -p '${path.dirname(file)}'`);
    expect(issues[0].fix).toContain('[tunnels.orders-db]');
    expect(issues[0].fix).toContain('SSMTUN_CONFIG');
  });

  it('reports syntax errors with the file name', async () => {
    const file = path.join(dir, 'bad.toml');
    await writeFile(file, '[daemon\n');
    await expect(loadConfig(file)).rejects.toThrow(`${file}:1:`);
  });
});

describe('parseConfig: mistakes', () => {
  it('TOML syntax error: missing closing quote', () => {
    const err = configError(doc('[tunnels.db]', 'region = "eu-west-1', 'target = "i-0123456789abcdef0"'));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.issues).toHaveLength(1);
    expect(err.issues[0]).toMatchObject({ file: FILE, line: 2, column: 20 });
    expect(err.message).toMatch(new RegExp(`^${FILE}:2:20: invalid TOML: `));
    expect(err.issues[0].fix).toContain('Close the string with a matching quote');
  });

  it('TOML syntax error: unquoted text value', () => {
    const err = configError(doc('[tunnels.db]', 'region = eu-west-1'));
    expect(err.message).toContain(`${FILE}:2:10: invalid TOML: invalid value`);
    expect(err.issues[0].fix).toContain('region = "eu-west-1"');
  });

  it('TOML syntax error: unquoted address in bind', () => {
    const err = configError(doc('[tunnels.db]', 'bind = [127.0.0.1]'));
    expect(err.message).toContain(`${FILE}:2:`);
    expect(err.issues[0].fix).toContain('"127.0.0.1"');
  });

  it('TOML syntax error: a tunnel defined twice names the first definition', () => {
    const err = configError(
      doc('[tunnels.db]', 'region = "eu-west-1"', '', '[tunnels.db]', 'local_port = 1'),
    );
    expect(err.message).toContain(`${FILE}:4:`);
    expect(err.issues[0].fix).toContain('already defined at line 1');
  });

  it('unknown key with a did-you-mean suggestion', () => {
    const issue = issueAt(
      doc(
        '[tunnels.orders-db]',
        'region = "eu-west-1"',
        'target = "i-0123456789abcdef0"',
        'remote_prot = 5432',
        'local_port = 15432',
      ),
      4,
    );
    expect(issue.key).toBe('tunnels.orders-db.remote_prot');
    expect(issue.message).toContain('unknown key remote_prot');
    expect(issue.fix).toContain('Did you mean remote_port?');
  });

  it('unknown key without a close match lists the valid keys', () => {
    const issue = issueAt(
      doc(
        '[tunnels.db]',
        'region = "eu-west-1"',
        'target = "i-0123456789abcdef0"',
        'remote_port = 5432',
        'local_port = 15432',
        'colour = "blue"',
      ),
      6,
    );
    expect(issue.message).toContain('unknown key colour');
    expect(issue.fix).toContain('valid keys are profile, region');
  });

  it('unknown top-level tables', () => {
    const err = configError(doc('[deamon]', 'api_port = 7000', '', '[tunnel.db]', 'region = "eu-west-1"'));
    expect(err.issues.map((i) => i.line)).toEqual([1, 4]);
    expect(err.issues[0].message).toBe('unknown table [deamon]');
    expect(err.issues[0].fix).toContain('Did you mean [daemon]?');
    expect(err.issues[1].message).toBe('unknown table [tunnel]');
    expect(err.issues[1].fix).toContain('Did you mean [tunnels]?');
    expect(err.message).toContain(`${FILE}:1: unknown table [deamon]. Did you mean [daemon]?`);
  });

  it('a tunnel table without the tunnels. prefix', () => {
    const issue = issueAt(doc('[orders-db]', 'region = "eu-west-1"'), 1);
    expect(issue.fix).toContain('[tunnels.orders-db]');
  });

  it('settings in the wrong table', () => {
    const err = configError(doc('region = "eu-west-1"', '[daemon]', 'local_port = 1'));
    expect(err.issues.map((i) => [i.line, i.key])).toEqual([
      [1, 'region'],
      [3, 'daemon.local_port'],
    ]);
    expect(err.issues[0].fix).toContain('[tunnels.NAME]');
    expect(err.issues[1].fix).toContain('[tunnels.NAME]');
  });

  it.each([
    ['region', 'region = "eu-west-1"'],
    ['remote_port', 'remote_port = 5432'],
    ['local_port', 'local_port = 15432'],
  ])('missing required key %s', (key, line) => {
    const all = [
      'region = "eu-west-1"',
      'target = "i-0123456789abcdef0"',
      'remote_port = 5432',
      'local_port = 15432',
    ];
    const issue = issueAt(doc('[daemon]', '', '[tunnels.db]', ...all.filter((l) => l !== line)), 3);
    expect(issue.key).toBe(`tunnels.db.${key}`);
    expect(issue.message).toBe(`[tunnels.db] is missing ${key}`);
    expect(issue.fix).toContain(`Add ${line}`);
  });

  it('missing target', () => {
    const issue = issueAt(
      doc('[tunnels.db]', 'region = "eu-west-1"', 'remote_port = 5432', 'local_port = 15432'),
      1,
    );
    expect(issue.message).toBe('[tunnels.db] has no target');
    expect(issue.key).toBe('tunnels.db.target');
    expect(issue.fix).toContain('target = "i-0123456789abcdef0"');
    expect(issue.fix).toContain('target_tag = "Name=bastion"');
  });

  it('both target and target_tag', () => {
    const issue = issueAt(
      doc(
        '[tunnels.db]',
        'region = "eu-west-1"',
        'target = "i-0123456789abcdef0"',
        'target_tag = "Name=bastion"',
        'remote_port = 5432',
        'local_port = 15432',
      ),
      4,
    );
    expect(issue.message).toContain('both target and target_tag');
    expect(issue.fix).toContain('Keep only one');
  });

  it.each([
    ['"i-xyz"', 'Instance ids are "i-" or "mi-" followed by hex digits'],
    ['"I-0123456789ABCDEF0"', 'Write target = "i-0123456789abcdef0"'],
    ['"Name=bastion"', 'Write target_tag = "Name=bastion" instead'],
  ])('malformed instance id %s', (value, fix) => {
    const issue = issueAt(
      doc(
        '[tunnels.db]',
        'region = "eu-west-1"',
        `target = ${value}`,
        'remote_port = 5432',
        'local_port = 15432',
      ),
      3,
    );
    expect(issue.key).toBe('tunnels.db.target');
    expect(issue.fix).toContain(fix);
  });

  it.each([
    ['"bastion"', 'target_tag = "Name=bastion"'],
    ['"Name="', 'target_tag = "Name=bastion"'],
    ['"=bastion"', 'target_tag = "Name=bastion"'],
  ])('malformed target_tag %s', (value, fix) => {
    const issue = issueAt(
      doc(
        '[tunnels.db]',
        'region = "eu-west-1"',
        `target_tag = ${value}`,
        'remote_port = 5432',
        'local_port = 15432',
      ),
      3,
    );
    expect(issue.message).toContain('is not of the form Key=Value');
    expect(issue.fix).toContain(fix);
  });

  it('port written as a string', () => {
    const issue = issueAt(
      doc(
        '[tunnels.db]',
        'region = "eu-west-1"',
        'target = "i-0123456789abcdef0"',
        'remote_port = 5432',
        'local_port = "15432"',
      ),
      5,
    );
    expect(issue.message).toBe('local_port in [tunnels.db] must be a number, not a string');
    expect(issue.fix).toBe('Write the number without quotes: local_port = 15432.');
  });

  it.each(['0', '70000', '-1'])('port out of range: %s', (value) => {
    const issue = issueAt(
      doc(
        '[tunnels.db]',
        'region = "eu-west-1"',
        'target = "i-0123456789abcdef0"',
        `remote_port = ${value}`,
        'local_port = 15432',
      ),
      4,
    );
    expect(issue.message).toContain('out of range');
    expect(issue.fix).toContain('Ports go from 1 to 65535');
  });

  it('non-loopback bind address, pointing at the element in a multi-line array', () => {
    const issue = issueAt(
      doc(
        '[tunnels.db]',
        'region = "eu-west-1"',
        'target = "i-0123456789abcdef0"',
        'remote_port = 5432',
        'local_port = 15432',
        'bind = [',
        '  "127.0.0.1",',
        '  "0.0.0.0", # everyone',
        ']',
      ),
      8,
    );
    expect(issue.message).toContain('bind address "0.0.0.0" in [tunnels.db] is not a loopback address');
    expect(issue.fix).toContain('would expose the database to the network');
  });

  it('bad engine', () => {
    const issue = issueAt(
      doc(
        '[tunnels.db]',
        'region = "eu-west-1"',
        'target = "i-0123456789abcdef0"',
        'remote_port = 5432',
        'local_port = 15432',
        'engine = "postgresql"',
      ),
      6,
    );
    expect(issue.fix).toContain('Did you mean engine = "postgres"?');
  });

  it.each([
    ['"10 min"', 'idle_timeout = "10m"'],
    ['"600"', 'idle_timeout = "600s"'],
    ['-5', 'idle_timeout = "10m"'],
    ['"1000h"', 'idle_timeout = "596h"'],
  ])('bad idle_timeout %s', (value, fix) => {
    const issue = issueAt(
      doc(
        '[tunnels.db]',
        'region = "eu-west-1"',
        'target = "i-0123456789abcdef0"',
        'remote_port = 5432',
        'local_port = 15432',
        `idle_timeout = ${value}`,
      ),
      6,
    );
    expect(issue.key).toBe('tunnels.db.idle_timeout');
    expect(issue.fix).toContain(fix);
  });

  it.each([
    ['"localhost:4566"', 'endpoint = "http://localhost:4566"'],
    ['"not a url"', 'endpoint = "http://127.0.0.1:4566"'],
  ])('endpoint not a URL: %s', (value, fix) => {
    const issue = issueAt(
      doc(
        '[tunnels.db]',
        'region = "eu-west-1"',
        'target = "i-0123456789abcdef0"',
        'remote_port = 5432',
        'local_port = 15432',
        `endpoint = ${value}`,
      ),
      6,
    );
    expect(issue.message).toContain('is not an http(s) URL');
    expect(issue.fix).toContain(fix);
  });

  it('remote_host given as a URL', () => {
    const issue = issueAt(
      doc(
        '[tunnels.db]',
        'region = "eu-west-1"',
        'target = "i-0123456789abcdef0"',
        'remote_host = "postgres://db.example.com:5433/orders"',
        'remote_port = 5432',
        'local_port = 15432',
      ),
      4,
    );
    expect(issue.fix).toContain('remote_host = "db.example.com" and remote_port = 5433');
  });

  it('two tunnels on the same local port point at both lines', () => {
    const issue = issueAt(
      doc(
        '[tunnels.a]',
        'region = "eu-west-1"',
        'target = "i-0123456789abcdef0"',
        'remote_port = 5432',
        'local_port = 15432',
        '',
        '[tunnels.b]',
        'region = "eu-west-1"',
        'target = "i-0123456789abcdef0"',
        'remote_port = 5432',
        'local_port = 15432',
      ),
      11,
    );
    expect(issue.message).toBe(`local_port 15432 in [tunnels.b] is already used by [tunnels.a] at ${FILE}:5`);
    expect(issue.fix).toContain('local_port = 15433');
  });

  it('a local port equal to the API port', () => {
    const issue = issueAt(
      doc(
        '[tunnels.a]',
        'region = "eu-west-1"',
        'target = "i-0123456789abcdef0"',
        'remote_port = 5432',
        'local_port = 7711',
      ),
      5,
    );
    expect(issue.message).toContain("daemon's API port");
    expect(issue.fix).toContain('local_port = 7712');
  });

  it('bad tunnel name', () => {
    const issue = issueAt(
      doc(
        '[tunnels."orders db!"]',
        'region = "eu-west-1"',
        'target = "i-0123456789abcdef0"',
        'remote_port = 5432',
        'local_port = 15432',
      ),
      1,
    );
    expect(issue.message).toBe('invalid tunnel name "orders db!"');
    expect(issue.fix).toContain("letters, digits, '_', '.' and '-'");
    expect(issue.fix).toContain('[tunnels.orders-db]');
  });

  it('tunnel name made only of dots', () => {
    const issue = issueAt(
      doc(
        '[tunnels."."]',
        'region = "eu-west-1"',
        'target = "i-0123456789abcdef0"',
        'remote_port = 5432',
        'local_port = 15432',
      ),
      1,
    );
    expect(issue.fix).toContain('[tunnels.my-db]');
  });

  it('tunnel name longer than 64 characters', () => {
    const name = 'x'.repeat(65);
    const issue = issueAt(
      doc(
        `[tunnels.${name}]`,
        'region = "eu-west-1"',
        'target = "i-0123456789abcdef0"',
        'remote_port = 5432',
        'local_port = 15432',
      ),
      1,
    );
    expect(issue.fix).toContain(`[tunnels.${'x'.repeat(64)}]`);
  });

  it('an unquoted dotted tunnel name', () => {
    const issue = issueAt(doc('[tunnels.orders.db]', 'region = "eu-west-1"'), 1);
    expect(issue.fix).toContain('[tunnels."orders.db"]');
  });

  it.each([
    ['tunnels = "orders"', 'not a string'],
    ['[[tunnels]]\nregion = "eu-west-1"', 'not an array of tables'],
  ])('tunnels is not a table: %s', (text, message) => {
    const issue = issueAt(text, 1);
    expect(issue.message).toContain(message);
    expect(issue.fix).toContain('[tunnels.orders-db]');
  });

  it('tunnel settings directly under [tunnels]', () => {
    const issue = issueAt(doc('[tunnels]', 'region = "eu-west-1"', 'target = "i-0123456789abcdef0"'), 1);
    expect(issue.message).toContain('region, target are directly under [tunnels]');
    expect(issue.fix).toContain('[tunnels.orders-db] instead of [tunnels]');
    // bastion is not a tunnel key, so it is reported as a tunnel that is not a table
    const err = configError(doc('[tunnels]', 'bastion = "yes"'));
    expect(err.issues[0].message).toContain('[tunnels.bastion] must be a table');
  });

  it('wrong types for strings and booleans', () => {
    const err = configError(
      doc(
        '[tunnels.db]',
        'region = "eu-west-1"',
        'target = "i-0123456789abcdef0"',
        'remote_port = 5432',
        'local_port = 15432',
        'db_name = 42',
        'lazy = "false"',
      ),
    );
    expect(err.issues.map((i) => [i.line, i.fix])).toEqual([
      [6, 'Put the value in quotes: db_name = "42".'],
      [7, 'Write it without quotes: lazy = false.'],
    ]);
  });

  it('bad [daemon] values', () => {
    const err = configError(doc('[daemon]', 'api_port = "7711"', 'log_level = "warning"'));
    expect(err.issues.map((i) => i.line)).toEqual([2, 3]);
    expect(err.issues[0].fix).toContain('api_port = 7711');
    expect(err.issues[1].fix).toContain('log_level = "warn"');
  });

  it('reports every mistake in the file, one per line of the message, in line order', () => {
    const err = configError(
      doc(
        '[tunnels.orders-db]',
        'region = "eu-west-1"',
        'target = "i-0123456789abcdef0"',
        'remote_prot = 5432',
        'local_port = "15432"',
        '',
        '[tunnels.users-db]',
        'region = "eu-west-1"',
        'target = "i-0123456789abcdef0"',
        'remote_port = 5432',
        'local_port = 15433',
        'bind = ["0.0.0.0"]',
      ),
    );
    expect(err.issues.map((i) => [i.line, i.key])).toEqual([
      [4, 'tunnels.orders-db.remote_prot'],
      [5, 'tunnels.orders-db.local_port'],
      [12, 'tunnels.users-db.bind'],
    ]);
    const lines = err.message.split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(new RegExp(`^${FILE}:4: unknown key remote_prot .*Did you mean remote_port\\?`));
    expect(lines[1]).toMatch(new RegExp(`^${FILE}:5: .*local_port = 15432`));
    expect(lines[2]).toMatch(new RegExp(`^${FILE}:12: .*expose the database`));
  });
});

describe('validateTunnel', () => {
  it('builds a tunnel from JSON with defaults', () => {
    const t = validateTunnel('api-db', {
      region: 'eu-west-1',
      target_tag: 'Name=bastion',
      remote_host: 'db.internal',
      remote_port: 5432,
      local_port: 15432,
      profile: null,
    });
    expect(t).toMatchObject({
      name: 'api-db',
      target: { kind: 'tag', key: 'Name', value: 'bastion' },
      bind: ['127.0.0.1', '::1'],
      idleTimeoutMs: 600_000,
      lazy: true,
      documentName: DOCUMENT_REMOTE_HOST,
      parameters: { host: ['db.internal'], portNumber: ['5432'], localPortNumber: ['15432'] },
      source: { file: '<api>', line: 0 },
    });
    expect(t).not.toHaveProperty('profile');
  });

  it('reports all problems with file <api>, line 0 and JSON-style fixes', () => {
    let err: unknown;
    try {
      validateTunnel('bad name', {
        region: 'eu-west-1',
        localPort: 15432,
        local_port: '15432',
        target: 'i-1',
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const issues = (err as ConfigError).issues;
    expect(issues.every((i) => i.file === '<api>' && i.line === 0)).toBe(true);
    const byKey = Object.fromEntries(issues.map((i) => [i.key, i.fix]));
    expect(byKey['tunnels."bad name"']).toContain('"bad-name"');
    expect(byKey['tunnels."bad name".localPort']).toContain('Did you mean local_port?');
    expect(byKey['tunnels."bad name".local_port']).toContain('"local_port": 15432');
    expect(byKey['tunnels."bad name".target']).toContain('"target": "i-0123456789abcdef0"');
    expect((err as ConfigError).message.split('\n')[0]).toMatch(/^<api>: /);
  });

  it('rejects a non-object body', () => {
    expect(() => validateTunnel('db', 'x')).toThrow(/tunnel db must be an object of settings/);
  });
});
