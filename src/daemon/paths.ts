/**
 * Where the daemon keeps its per-user files. XDG on every platform (macOS users of CLI tools expect
 * ~/.config and ~/.local/state as well), with the spec's rule that relative values are ignored.
 */
import os from 'node:os';
import path from 'node:path';

function xdg(env: NodeJS.ProcessEnv, name: string, fallback: string[]): string {
  const v = env[name];
  if (v && path.isAbsolute(v)) return path.join(v, 'ssmtun');
  return path.join(os.homedir(), ...fallback, 'ssmtun');
}

/** API key, API-made tunnels: survives reboots, private to the user. */
export function stateDir(env: NodeJS.ProcessEnv = process.env): string {
  return xdg(env, 'XDG_STATE_HOME', ['.local', 'state']);
}

/**
 * The API's unix socket. $XDG_RUNTIME_DIR is the user's own 0700 tmpfs on systemd machines; elsewhere
 * (macOS, root shells, CI) a folder in the state dir, never a guessable /tmp path another user could
 * create first.
 */
export function runtimeDir(env: NodeJS.ProcessEnv = process.env): string {
  const v = env.XDG_RUNTIME_DIR;
  if (v && path.isAbsolute(v)) return path.join(v, 'ssmtun');
  return path.join(stateDir(env), 'run');
}

export function apiKeyFile(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(stateDir(env), 'api-key');
}

/** $SSMTUN_SOCKET points the CLI at another daemon's socket (the demo prints one). */
export function apiSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.SSMTUN_SOCKET && path.isAbsolute(env.SSMTUN_SOCKET)) return env.SSMTUN_SOCKET;
  return path.join(runtimeDir(env), 'api.sock');
}
