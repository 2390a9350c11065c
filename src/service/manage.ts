/**
 * install / uninstall / status / logs / restart for the current platform. Every action is a plan
 * (files, directories, commands) that is either printed (`--dry-run`: `# <path>` + content, then
 * `$ <command>`) or carried out, so what a dry run shows is exactly what a real run does.
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { darwinCommands, darwinInstallPlan, darwinUninstallPlan, plistPath } from './launchd.js';
import { commandLine } from './runner.js';
import { linuxCommands, linuxInstallPlan, linuxUninstallPlan, unitPath } from './systemd.js';
import { MARKER, type PlannedCommand, type ServiceContext, ServiceError, type ServicePlan } from './types.js';

export function serviceFile(ctx: ServiceContext): string {
  return ctx.platform === 'darwin' ? plistPath(ctx.home) : unitPath(ctx.home, ctx.env);
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** A file at our path that we did not write is the user's: never overwrite or delete it silently. */
async function ownedExisting(ctx: ServiceContext, force: boolean): Promise<string | undefined> {
  const file = serviceFile(ctx);
  const existing = await readIfExists(file);
  if (existing !== undefined && !existing.includes(MARKER) && !force) {
    throw new ServiceError(
      'FOREIGN_SERVICE_FILE',
      `${file} exists and was not written by ssmtun service install`,
      `move it away (or pass --force to replace it): mv ${file} ${file}.bak`,
    );
  }
  return existing;
}

export async function installPlan(
  ctx: ServiceContext,
  opts: { sandbox?: boolean; force?: boolean } = {},
): Promise<ServicePlan> {
  const existing = await ownedExisting(ctx, opts.force ?? false);
  const plan =
    ctx.platform === 'darwin'
      ? darwinInstallPlan(ctx, { existing })
      : linuxInstallPlan(ctx, { sandbox: opts.sandbox ?? true, existing });
  if (/[/\\]_npx[/\\]/.test(ctx.scriptPath) || ctx.scriptPath.startsWith(`${os.tmpdir()}${path.sep}`)) {
    plan.notes.unshift(
      `warning: ${ctx.scriptPath} is in a temporary location (npx cache?) that may vanish; ` +
        'install the package (npm install -g ./ssmtun-*.tgz) and run its ssmtun service install',
    );
  }
  if ((await readIfExists(ctx.configPath).catch(() => '')) === undefined) {
    plan.notes.unshift(
      `warning: ${ctx.configPath} does not exist yet; the daemon exits 78 (not restarted) until it does. ` +
        'Write it (docs/config.md), then: ssmtun service restart',
    );
  }
  return plan;
}

export async function uninstallPlan(
  ctx: ServiceContext,
  opts: { force?: boolean } = {},
): Promise<ServicePlan> {
  const existing = await ownedExisting(ctx, opts.force ?? false);
  return ctx.platform === 'darwin'
    ? darwinUninstallPlan(ctx, existing !== undefined)
    : linuxUninstallPlan(ctx, existing !== undefined);
}

export function printPlan(ctx: ServiceContext, plan: ServicePlan): void {
  for (const f of plan.files)
    ctx.out(`# ${f.path}\n${f.content.endsWith('\n') ? f.content : `${f.content}\n`}`);
  for (const d of plan.dirs) ctx.out(`$ ${commandLine(['mkdir', '-p', d])}\n`);
  for (const r of plan.remove) ctx.out(`$ ${commandLine(['rm', '-f', r])}\n`);
  for (const c of plan.commands) ctx.out(`$ ${commandLine(c.argv)}\n`);
}

async function writeAtomic(file: string, content: string, mode: number): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, content, { mode });
  await rename(tmp, file);
}

async function runAll(ctx: ServiceContext, commands: PlannedCommand[]): Promise<void> {
  for (const c of commands) {
    const r = await ctx.run(c.argv);
    if (r.code !== 0 && !c.allowFail) {
      throw new ServiceError(
        'COMMAND_FAILED',
        `${commandLine(c.argv)} exited ${r.code}: ${(r.stderr || r.stdout).trim()}`,
        ctx.platform === 'linux' && c.argv[0] === 'systemctl'
          ? 'systemctl --user needs your login session (a user manager); run it from a desktop or SSH login, not sudo/su'
          : undefined,
      );
    }
  }
}

export async function applyPlan(ctx: ServiceContext, plan: ServicePlan): Promise<void> {
  for (const f of plan.files) await writeAtomic(f.path, f.content, f.mode);
  for (const d of plan.dirs) await mkdir(d, { recursive: true });
  // Stop the service before its file goes, so the service manager still knows what it is stopping.
  if (plan.remove.length > 0) {
    await runAll(ctx, plan.commands.slice(0, 1));
    for (const r of plan.remove) await rm(r, { force: true });
    await runAll(ctx, plan.commands.slice(1));
  } else {
    await runAll(ctx, plan.commands);
  }
  for (const n of plan.notes) ctx.out(`${n}\n`);
}

async function defaultHealth(apiPort: number) {
  try {
    const res = await fetch(`http://127.0.0.1:${apiPort}/health`, { signal: AbortSignal.timeout(2000) });
    return (await res.json()) as { ok: boolean; version?: string; tunnels?: number };
  } catch {
    return undefined;
  }
}

/** The service manager's view, then the daemon's own. Exit 0 only when the daemon answers. */
export async function serviceStatus(ctx: ServiceContext): Promise<number> {
  const file = serviceFile(ctx);
  const installed = (await readIfExists(file)) !== undefined;
  ctx.out(`service file: ${file}${installed ? '' : ' (not installed: ssmtun service install)'}\n`);
  if (installed) {
    const cmds = ctx.platform === 'darwin' ? darwinCommands.status(ctx.uid) : linuxCommands.status();
    for (const c of cmds) {
      const r = await ctx.run(c.argv);
      ctx.out(`${(r.stdout + r.stderr).trimEnd()}\n`);
    }
  }
  const health = await (ctx.health ?? defaultHealth)(ctx.apiPort);
  if (health?.ok) {
    ctx.out(
      `daemon: ready on 127.0.0.1:${ctx.apiPort} (version ${health.version}, ${health.tunnels} tunnels)\n`,
    );
    return 0;
  }
  ctx.out(`daemon: not answering on 127.0.0.1:${ctx.apiPort}\n`);
  return 1;
}

export async function serviceRestart(ctx: ServiceContext): Promise<void> {
  await runAll(ctx, ctx.platform === 'darwin' ? darwinCommands.restart(ctx.uid) : linuxCommands.restart());
}

export async function serviceLogs(ctx: ServiceContext, follow: boolean): Promise<number> {
  const [c] = ctx.platform === 'darwin' ? darwinCommands.logs(ctx.home, follow) : linuxCommands.logs(follow);
  return (await ctx.run(c.argv, { inherit: true })).code;
}
