/**
 * `ssmtun doctor`: every check a support thread would ask for, with the fix for each failure: the
 * config parses, each profile's credentials resolve (and when they expire), the daemon answers, the API
 * key is readable, and each tunnel's target is an online managed instance.
 */
import { ApiKeyError, readApiKey } from '../../api/auth.js';
import { createSsmGateway, type SsmGateway } from '../../daemon/aws.js';
import { ConfigError, type DaemonConfig, defaultConfigPath, loadConfig } from '../../daemon/config.js';
import { apiKeyFile } from '../../daemon/paths.js';
import { CLIENT_OPTIONS, CLIENT_OPTIONS_HELP, parseCommand } from '../args.js';
import { DaemonClient } from '../client.js';
import { useColour } from '../status-format.js';
import { usage } from './token.js';

interface Check {
  check: string;
  ok: boolean;
  /** Passes, but with something to fix (shown with its fix; the exit code stays 0). */
  warn?: boolean;
  detail: string;
  fix?: string;
}

const USAGE = `usage: ssmtun doctor [--json]

Checks, with the fix for each failure: the config file parses; the AWS credentials of each profile
resolve (and when they expire); the daemon is running and answers; the API key file is readable and
private; each tunnel's target is an SSM managed instance that is online.
Exit 0 when everything passes, 1 otherwise.
  --json              the checks as a JSON array
${CLIENT_OPTIONS_HELP}
`;

const err = (e: unknown) => e as Error & { code?: string; fix?: string };

function maskKey(id: string): string {
  return id.length > 8 ? `${id.slice(0, 4)}…${id.slice(-4)}` : id;
}

async function credentialChecks(config: DaemonConfig, gateways: Map<string, SsmGateway>): Promise<Check[]> {
  const checks: Check[] = [];
  for (const t of config.tunnels) {
    const key = `${t.profile ?? ''}|${t.region}|${t.endpoint ?? ''}`;
    if (gateways.has(key)) continue;
    const gw = createSsmGateway({ profile: t.profile, region: t.region, endpoint: t.endpoint });
    gateways.set(key, gw);
    const who = `profile ${t.profile ?? '(default chain)'} in ${t.region}`;
    try {
      const c = await gw.credentials();
      const exp = c.expiration ? `, expire ${c.expiration.toISOString()}` : '';
      checks.push({
        check: `credentials: ${who}`,
        ok: true,
        detail: `access key ${maskKey(c.accessKeyId)}${exp}`,
      });
    } catch (e) {
      checks.push({ check: `credentials: ${who}`, ok: false, detail: err(e).message, fix: err(e).fix });
    }
  }
  return checks;
}

async function targetChecks(config: DaemonConfig, gateways: Map<string, SsmGateway>): Promise<Check[]> {
  const checks: Check[] = [];
  for (const t of config.tunnels) {
    const gw = gateways.get(`${t.profile ?? ''}|${t.region}|${t.endpoint ?? ''}`)!;
    const check = `target of ${t.name}`;
    try {
      if (t.target.kind === 'tag') {
        const ids = await gw.findInstancesByTag(t.target.key, t.target.value);
        checks.push(
          ids.length > 0
            ? { check, ok: true, detail: `${t.target.key}=${t.target.value}: online ${ids.join(', ')}` }
            : {
                check,
                ok: false,
                detail: `no online managed instance has the tag ${t.target.key}=${t.target.value} in ${t.region}`,
                fix: 'check the tag and the region, and that the instance is running with its SSM agent online (Fleet Manager)',
              },
        );
        continue;
      }
      const i = await gw.describeInstance(t.target.instanceId);
      if (!i) {
        checks.push({
          check,
          ok: false,
          detail: `${t.target.instanceId} is not a managed instance in ${t.region}`,
          fix: 'check the instance id and region; the instance needs the SSM agent and the AmazonSSMManagedInstanceCore role',
        });
      } else if (i.pingStatus !== 'Online') {
        checks.push({
          check,
          ok: false,
          detail: `${t.target.instanceId} is ${i.pingStatus}`,
          fix: 'start the instance, or check its SSM agent and its route to the ssm/ssmmessages endpoints',
        });
      } else {
        checks.push({
          check,
          ok: true,
          detail: `${t.target.instanceId} online, agent ${i.agentVersion ?? 'unknown'}`,
        });
      }
    } catch (e) {
      checks.push({ check, ok: false, detail: err(e).message, fix: err(e).fix });
    }
  }
  return checks;
}

export async function doctorCommand(argv: string[]): Promise<number> {
  const { values, help } = parseCommand(argv, { ...CLIENT_OPTIONS, json: { type: 'boolean' } }, USAGE);
  if (help) return usage(USAGE);
  const checks: Check[] = [];
  const file = values.config ?? defaultConfigPath();
  let config: DaemonConfig | undefined;
  try {
    config = await loadConfig(file);
    checks.push({ check: 'config', ok: true, detail: `${file}: ${config.tunnels.length} tunnel(s)` });
    for (const w of config.warnings ?? [])
      checks.push({ check: 'config', ok: true, warn: true, detail: w.message, fix: w.fix });
  } catch (e) {
    const issues = e instanceof ConfigError ? e.issues : [];
    checks.push({
      check: 'config',
      ok: false,
      detail: err(e).message,
      fix: issues[0]?.fix ?? 'fix the file, then: ssmtun reload',
    });
  }
  try {
    const client = await DaemonClient.connect({ config: values.config, apiPort: values['api-port'] });
    const h = await client.request<{ version: string; pid: number; tunnels: number }>('GET', '/health');
    checks.push({
      check: 'daemon',
      ok: true,
      detail: `ssmtun ${h.version} (pid ${h.pid}) on ${client.description}, ${h.tunnels} tunnel(s)`,
    });
  } catch (e) {
    checks.push({ check: 'daemon', ok: false, detail: err(e).message, fix: err(e).fix });
  }
  try {
    readApiKey(apiKeyFile());
    checks.push({ check: 'API key', ok: true, detail: `${apiKeyFile()} (0600)` });
  } catch (e) {
    const missing = e instanceof ApiKeyError && e.code === 'API_KEY_UNREADABLE';
    checks.push({
      check: 'API key',
      ok: false,
      detail: err(e).message,
      fix: err(e).fix ?? (missing ? 'start the daemon once' : undefined),
    });
  }
  if (config) {
    const gateways = new Map<string, SsmGateway>();
    checks.push(...(await credentialChecks(config, gateways)));
    checks.push(...(await targetChecks(config, gateways)));
    for (const g of gateways.values()) g.destroy();
  }

  if (values.json) process.stdout.write(`${JSON.stringify(checks, null, 2)}\n`);
  else {
    const colour = useColour(process.stdout);
    const mark = (c: Check) =>
      c.warn
        ? colour
          ? '\x1b[33m!\x1b[0m'
          : 'WARN'
        : colour
          ? c.ok
            ? '\x1b[32m✓\x1b[0m'
            : '\x1b[31m✗\x1b[0m'
          : c.ok
            ? 'ok  '
            : 'FAIL';
    for (const c of checks) {
      const showFix = c.fix && (!c.ok || c.warn);
      process.stdout.write(`${mark(c)} ${c.check}: ${c.detail}\n${showFix ? `     fix: ${c.fix}\n` : ''}`);
    }
  }
  return checks.every((c) => c.ok) ? 0 : 1;
}
