#!/usr/bin/env -S node --import tsx
/**
 * A stand-in for session-manager-plugin made of ssmtun's own pieces, so `--client cmd:` can be tried
 * without the real plugin: `npm run bench -- --client cmd:bench/plugin-shim.ts`. It takes the six
 * arguments the AWS CLI passes, uses the session the caller started (no StartSession of its own),
 * listens on localPortNumber once the session is up, and forwards every connection over that one
 * session until SIGINT/SIGTERM. It runs through tsx, which adds ~30 MB to its RSS.
 */
import { createSsmGateway, type SsmGateway } from '../src/daemon/aws.js';
import { parseConfig } from '../src/daemon/config.js';
import { createLogger } from '../src/daemon/logger.js';
import { Tunnel } from '../src/daemon/tunnel.js';

const [responseJson, region, operation, , requestJson, endpoint] = process.argv.slice(2);
if (operation !== 'StartSession' || !responseJson || !requestJson || !region) {
  process.stderr.write(
    'usage: plugin-shim RESPONSE_JSON REGION StartSession PROFILE REQUEST_JSON ENDPOINT\n',
  );
  process.exit(2);
}
const response = JSON.parse(responseJson) as { SessionId: string; TokenValue: string; StreamUrl: string };
const request = JSON.parse(requestJson) as { Target: string; Parameters: Record<string, string[]> };
const p = request.Parameters;
const toml = [
  '[tunnels.plugin]',
  `region = "${region}"`,
  `target = "${request.Target}"`,
  p.host ? `remote_host = "${p.host[0]}"` : '',
  `remote_port = ${p.portNumber[0]}`,
  `local_port = ${p.localPortNumber[0]}`,
  'bind = ["127.0.0.1"]',
  'lazy = false',
  'idle_timeout = "0"',
  endpoint ? `endpoint = "${endpoint}"` : '',
  '',
].join('\n');
const config = parseConfig(toml, 'plugin-shim arguments').tunnels[0];
const base = createSsmGateway({ region, endpoint: endpoint || undefined });
let unused = true;
const gateway: SsmGateway = {
  ...base,
  async startSession() {
    if (!unused) throw new Error('the session given on the command line has ended');
    unused = false;
    return { sessionId: response.SessionId, tokenValue: response.TokenValue, streamUrl: response.StreamUrl };
  },
};
const tunnel = new Tunnel(config, {
  gateway: () => gateway,
  logger: createLogger({ level: 'warn', pretty: false }),
});
process.stdout.write(`\nStarting session with SessionId: ${response.SessionId}\n`);
await tunnel.open();
await tunnel.start();
process.stdout.write(
  `Port ${config.localPort} opened for sessionId ${response.SessionId}.\nWaiting for connections...\n`,
);

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  const force = setTimeout(() => process.exit(0), 2000);
  void tunnel.stop().finally(() => {
    clearTimeout(force);
    base.destroy();
    process.exit(0);
  });
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
