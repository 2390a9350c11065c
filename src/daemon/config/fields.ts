/** Checks for the tunnel settings whose values need more than a type check. */

import { isIPv4, isIPv6 } from 'node:net';
import { describe } from './render.js';
import { ENGINE_ALIASES, INSTANCE_ID_RE, REGION_RE, SAMPLE_INSTANCE, SAMPLE_TAG } from './schema.js';
import type { Section } from './section.js';
import { suggest } from './suggest.js';
import {
  DEFAULT_BIND,
  DEFAULT_IDLE_TIMEOUT_MS,
  ENGINES,
  MAX_IDLE_TIMEOUT_MS,
  type TunnelConfig,
} from './types.js';

export function checkEngine(s: Section): 'postgres' | 'mysql' | undefined {
  const engine = s.string('engine', 'postgres', true);
  if (!s.has('engine')) return 'postgres';
  if (engine === undefined) return undefined;
  if (engine === 'postgres' || engine === 'mysql') return engine;
  const guess = suggest(engine, ENGINES, ENGINE_ALIASES);
  s.report(
    'engine',
    `engine ${JSON.stringify(engine)} in ${s.where} is not supported`,
    `${guess ? `Did you mean ${s.ex('engine', guess)}? ` : ''}Use ${s.ex('engine', 'postgres')} or ${s.ex('engine', 'mysql')} (Aurora and MariaDB use the same wire protocols).`,
  );
  return undefined;
}

export function checkRegion(s: Section): string | undefined {
  const region = s.string('region', 'eu-west-1', false);
  if (!s.has('region')) {
    if (s.missing('region')) {
      s.report(
        'region',
        `${s.where} is missing region`,
        `Add ${s.ex('region', 'eu-west-1')} (the AWS region of the target instance).`,
      );
    }
    return undefined;
  }
  if (region === undefined) return undefined;
  if (REGION_RE.test(region)) return region;
  const lower = region.trim().toLowerCase();
  const az = /^(.*-\d{1,2})[a-z]$/.exec(lower);
  let fix: string;
  if (az && REGION_RE.test(az[1])) {
    fix = `That looks like an availability zone; write the region: ${s.ex('region', az[1])}.`;
  } else if (REGION_RE.test(lower)) {
    fix = `Write ${s.ex('region', lower)}.`;
  } else {
    fix = `Write a region code such as ${s.ex('region', 'eu-west-1')} or ${s.ex('region', 'us-east-1')}.`;
  }
  s.report('region', `region ${JSON.stringify(region)} in ${s.where} is not an AWS region code`, fix);
  return undefined;
}

export function checkTarget(s: Section): TunnelConfig['target'] | undefined {
  const hasTarget = s.has('target');
  const hasTag = s.has('target_tag');
  if (hasTarget && hasTag) {
    s.report(
      'target_tag',
      `both target and target_tag are set in ${s.where}`,
      'Keep only one: target for a fixed instance id, or target_tag to look up an online instance by tag.',
    );
  } else if (s.missing('target') && s.missing('target_tag')) {
    s.report(
      'target',
      `${s.where} has no target`,
      `Add ${s.ex('target', SAMPLE_INSTANCE)} (an instance id) or ${s.ex('target_tag', SAMPLE_TAG)} (a tag of an online managed instance).`,
    );
  }

  let result: TunnelConfig['target'] | undefined;
  const id = s.string('target', SAMPLE_INSTANCE, false);
  if (id !== undefined) {
    const lower = id.trim().toLowerCase();
    if (INSTANCE_ID_RE.test(id)) {
      result = { kind: 'instance', instanceId: id };
    } else if (id.includes('=')) {
      s.report(
        'target',
        `target ${JSON.stringify(id)} in ${s.where} is a tag, not an instance id`,
        `Write ${s.ex('target_tag', id)} instead.`,
      );
    } else {
      s.report(
        'target',
        `target ${JSON.stringify(id)} in ${s.where} is not an instance id`,
        INSTANCE_ID_RE.test(lower)
          ? `Write ${s.ex('target', lower)}.`
          : `Instance ids are "i-" or "mi-" followed by hex digits, e.g. ${s.ex('target', SAMPLE_INSTANCE)}; to pick the instance by tag write ${s.ex('target_tag', SAMPLE_TAG)} instead.`,
      );
    }
  }

  const tag = s.string('target_tag', SAMPLE_TAG, false);
  if (tag !== undefined) {
    const eq = tag.indexOf('=');
    const key = eq < 0 ? '' : tag.slice(0, eq).trim();
    const value = eq < 0 ? '' : tag.slice(eq + 1).trim();
    if (key && value) {
      result = { kind: 'tag', key, value };
    } else {
      let fix = `Write the tag as Key=Value, e.g. ${s.ex('target_tag', SAMPLE_TAG)}.`;
      if (eq < 0 && INSTANCE_ID_RE.test(tag.trim())) fix = `Write ${s.ex('target', tag.trim())} instead.`;
      else if (eq < 0) fix = `Write the tag as Key=Value, e.g. ${s.ex('target_tag', `Name=${tag.trim()}`)}.`;
      s.report(
        'target_tag',
        `target_tag ${JSON.stringify(tag)} in ${s.where} is not of the form Key=Value`,
        fix,
      );
    }
  }
  return hasTarget && hasTag ? undefined : result;
}

export function checkRemoteHost(s: Section): string | undefined {
  const host = s.string('remote_host', 'orders.cluster-abc.eu-west-1.rds.amazonaws.com', true);
  if (host === undefined) return undefined;
  const bad = (problem: string, fix: string): undefined => {
    s.report('remote_host', `remote_host ${JSON.stringify(host)} in ${s.where} ${problem}`, fix);
    return undefined;
  };
  if (host.includes('://')) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(host);
    } catch {}
    const hostname = parsed?.hostname.replace(/^\[|\]$/g, '');
    if (!hostname)
      return bad('is a URL, not a host name', 'Write only the host name, without scheme or path.');
    return bad(
      'is a URL, not a host name',
      `Write ${s.ex('remote_host', hostname)}${parsed?.port ? ` and ${s.ex('remote_port', Number(parsed.port))}` : ''}.`,
    );
  }
  if (/\s/.test(host))
    return bad(
      'contains spaces',
      `Write the host name alone, e.g. ${s.ex('remote_host', host.trim().split(/\s+/)[0])}.`,
    );
  const hostPort = /^([^:]+):(\d+)$/.exec(host);
  if (hostPort) {
    return bad(
      'includes a port',
      `Put the port in remote_port: ${s.ex('remote_host', hostPort[1])} and ${s.ex('remote_port', Number(hostPort[2]))}.`,
    );
  }
  // `[::1]`: an IPv6 literal in URL brackets; hardening.ts removes them.
  if (/^\[[0-9A-Fa-f:.]+\]$/.test(host)) return host;
  if (host.includes('/') || (host.includes(':') && !isIPv6(host))) {
    return bad(
      'is not a host name or IP address',
      `Write e.g. ${s.ex('remote_host', 'orders.cluster-abc.eu-west-1.rds.amazonaws.com')}.`,
    );
  }
  return host;
}

export function checkBind(s: Section): string[] | undefined {
  const v = s.get('bind');
  if (v === undefined) return [...DEFAULT_BIND];
  if (typeof v === 'string') {
    s.report(
      'bind',
      `bind in ${s.where} must be an array of addresses, not a string`,
      `Write ${s.ex('bind', [v])}.`,
    );
    return undefined;
  }
  if (!Array.isArray(v) || v.some((a) => typeof a !== 'string')) {
    s.report(
      'bind',
      `bind in ${s.where} must be an array of address strings`,
      `Write e.g. ${s.ex('bind', DEFAULT_BIND)}.`,
    );
    return undefined;
  }
  if (v.length === 0) {
    s.report(
      'bind',
      `bind in ${s.where} is empty, so the tunnel would not listen anywhere`,
      `List at least one loopback address, e.g. ${s.ex('bind', ['127.0.0.1'])}, or remove the key to use ${JSON.stringify(DEFAULT_BIND).replace(',', ', ')}.`,
    );
    return undefined;
  }
  let ok = true;
  const seen = new Set<string>();
  for (const [i, addr] of (v as string[]).entries()) {
    // Multi-line arrays are common for bind; point at the offending element, not the opening bracket.
    const line = s.ctx.lineOf([...s.path, 'bind', String(i)]);
    if (!isLoopback(addr)) {
      ok = false;
      s.report(
        'bind',
        `bind address ${JSON.stringify(addr)} in ${s.where} is not a loopback address`,
        'Use 127.0.0.1, ::1 or localhost: any other address would expose the database to the network, ' +
          'letting anyone who can reach this machine connect through the tunnel with your AWS access.',
        line,
      );
    } else if (seen.has(addr)) {
      ok = false;
      s.report(
        'bind',
        `bind lists ${JSON.stringify(addr)} twice in ${s.where}`,
        'List each address once.',
        line,
      );
    }
    seen.add(addr);
  }
  return ok ? [...(v as string[])] : undefined;
}

export function checkIdleTimeout(s: Section): number | undefined {
  const v = s.get('idle_timeout');
  if (v === undefined) return DEFAULT_IDLE_TIMEOUT_MS;
  const where = `idle_timeout in ${s.where}`;
  const usage = `Write a number with a unit (s, m or h), e.g. ${s.ex('idle_timeout', '10m')}, ${s.ex('idle_timeout', '0')} to never close, or a whole number of seconds without quotes.`;
  let ms: number | undefined;
  if (typeof v === 'number' || typeof v === 'bigint') {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) {
      s.report('idle_timeout', `${where} must be a whole number of seconds (0 or more), not ${n}`, usage);
      return undefined;
    }
    ms = n * 1000;
  } else if (typeof v === 'string') {
    const text = v.trim();
    const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(text);
    if (text === '0') {
      ms = 0;
    } else if (m && text !== '') {
      ms = (Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0)) * 1000;
    } else if (/^\d+$/.test(text)) {
      s.report(
        'idle_timeout',
        `${where} has no unit: ${JSON.stringify(v)}`,
        `Add a unit, e.g. ${s.ex('idle_timeout', `${text}s`)}, or write the seconds without quotes: ${s.ex('idle_timeout', Number(text))}.`,
      );
      return undefined;
    } else {
      s.report('idle_timeout', `${where} is not a duration: ${JSON.stringify(v)}`, usage);
      return undefined;
    }
  } else {
    s.report('idle_timeout', `${where} must be a duration string or a number, not ${describe(v)}`, usage);
    return undefined;
  }
  if (ms > MAX_IDLE_TIMEOUT_MS) {
    s.report(
      'idle_timeout',
      `${where} is longer than the maximum of 596h`,
      `Write at most ${s.ex('idle_timeout', '596h')}, or ${s.ex('idle_timeout', '0')} to never close the session.`,
    );
    return undefined;
  }
  return ms;
}

export function checkEndpoint(s: Section): string | undefined {
  const endpoint = s.string('endpoint', 'http://127.0.0.1:4566', true);
  if (endpoint === undefined) return undefined;
  let url: URL | undefined;
  try {
    url = new URL(endpoint);
  } catch {}
  if (url && url.protocol === 'http:' && url.hostname && !isLoopback(url.hostname.replace(/^\[|\]$/g, ''))) {
    // Plain http would carry signed requests and session tokens in the clear.
    s.report(
      'endpoint',
      `endpoint ${JSON.stringify(endpoint)} in ${s.where} uses plain http:// to a host that is not this machine`,
      `Use https://, e.g. ${s.ex('endpoint', `https://${url.host}`)} (plain http is only accepted on loopback).`,
    );
    return undefined;
  }
  if (url && (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname) return endpoint;
  // "localhost:4566" parses as a URL with scheme "localhost:", so check the scheme rather than parse success.
  const fix = /^[A-Za-z0-9.[\]:-]+$/.test(endpoint)
    ? `Add the scheme: ${s.ex('endpoint', `http://${endpoint}`)}.`
    : `Write a full http(s) URL, e.g. ${s.ex('endpoint', 'http://127.0.0.1:4566')}, or remove the key to use the regional AWS endpoint.`;
  s.report('endpoint', `endpoint ${JSON.stringify(endpoint)} in ${s.where} is not an http(s) URL`, fix);
  return undefined;
}

function isLoopback(addr: string): boolean {
  if (addr === 'localhost') return true;
  if (isIPv4(addr)) return addr.startsWith('127.');
  if (isIPv6(addr)) {
    // URL normalizes the many spellings of ::1 (0:0:0:0:0:0:0:1, ::0001, ...).
    try {
      return new URL(`http://[${addr}]/`).hostname === '[::1]';
    } catch {
      return false;
    }
  }
  return false;
}
