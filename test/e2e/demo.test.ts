/** The README's first command: `npm run demo -- --once` does a full round trip and exits 0. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);

describe('ssmtun demo --once', () => {
  it('opens a tunnel lazily through the simulator, echoes, logs in to the simulated RDS with an IAM token, and exits 0', async () => {
    const { stdout } = await run(
      process.execPath,
      ['--import', 'tsx', 'src/cli/index.ts', 'demo', '--once'],
      {
        env: { ...process.env, CI: 'true' },
      },
    );
    expect(stdout).toMatch(
      /^ssmtun demo: ok: demo-echo via i-[0-9a-f]+ \(mux mode, agent 3\.3\.987\.0\): first byte after lazy open [\d.]+ ms, 64-byte round trip [\d.]+ ms, psql through demo-pg: ok \(IAM token, TLS verify-full to the simulated RDS\)$/m,
    );
  }, 60_000);
});
