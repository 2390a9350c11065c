/**
 * The documented examples in systemd/ and launchd/, rendered from the same templates as
 * `ssmtun service install` with placeholder paths. `npm run service-examples` rewrites them; a test
 * fails when they drift from the templates.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderPlist } from './launchd.js';
import { renderUnit } from './systemd.js';

const NODE = '/usr/local/bin/node';
const SCRIPT = '/usr/local/lib/node_modules/ssmtun/dist/cli/index.js';
const MAC_HOME = '/Users/you';
const NOTE = 'An example with placeholder paths: `ssmtun service install` writes this file with yours.';

export function exampleFiles(): Record<string, string> {
  return {
    'systemd/ssmtun.service': renderUnit({
      nodePath: NODE,
      scriptPath: SCRIPT,
      configPath: '%h/.config/ssmtun/config.toml',
      path: '/usr/local/bin:/usr/bin:/bin',
      version: 'x.y.z',
      note: NOTE,
      sandbox: true,
    }),
    'launchd/dev.ssmtun.daemon.plist': renderPlist({
      nodePath: '/opt/homebrew/bin/node',
      scriptPath: '/opt/homebrew/lib/node_modules/ssmtun/dist/cli/index.js',
      configPath: `${MAC_HOME}/.config/ssmtun/config.toml`,
      home: MAC_HOME,
      path: '/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin',
      logDir: `${MAC_HOME}/Library/Logs/ssmtun`,
      version: 'x.y.z',
      note: NOTE,
    }),
  };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
  for (const [rel, text] of Object.entries(exampleFiles())) writeFileSync(path.join(root, rel), text);
}
