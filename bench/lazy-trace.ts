/**
 * `npx tsx bench/lazy-trace.ts [RTT_MS] [RUNS]`: the timeline of the last of RUNS lazy opens
 * (default 3) over the simulator's WAN model (default 30 ms RTT), in round trips and ms, to see which
 * of them a change removed or overlapped; `TRACE_IN=1` adds what the daemon and the agent receive.
 * An in-process simulator and the daemon's ClientSession; every WebSocket frame any of them sends
 * is stamped (acks left out) by wrapping ws's send, which is why this is a diagnostic, not a test.
 * The SDK client makes one StartSession first, as a daemon that resolved it at start would have.
 */
import pino from 'pino';
import { WebSocket } from 'ws';
import { createSsmGateway } from '../src/daemon/aws.js';
import { DOCUMENT_REMOTE_HOST } from '../src/daemon/config.js';
import { ClientSession } from '../src/daemon/session.js';
import { startSimulator } from '../src/sim/index.js';
import { startEchoServer } from '../src/sim/net.js';

const rtt = Number(process.argv[2] ?? 30);
const runs = Number(process.argv[3] ?? 3);
if (!Number.isFinite(rtt) || rtt <= 0 || !Number.isInteger(runs) || runs < 1) {
  process.stderr.write('usage: npx tsx bench/lazy-trace.ts [RTT_MS] [RUNS]\n');
  process.exit(2);
}
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const TARGET = 'i-05e1a000000000001';
const sim = await startSimulator({ wan: { rttMs: rtt } });
const echo = await startEchoServer();
const params = { host: ['127.0.0.1'], portNumber: [String(echo.port)], localPortNumber: ['0'] };
const lines: string[] = [];
let t0 = performance.now();
const mark = (what: string) =>
  lines.push(
    `${((performance.now() - t0) / rtt).toFixed(2).padStart(6)} RTT ${(performance.now() - t0).toFixed(1).padStart(7)} ms  ${what}`,
  );

const send = WebSocket.prototype.send;
WebSocket.prototype.send = function (this: WebSocket & { _isServer?: boolean; url: string }, data, ...rest) {
  // The daemon dials the public port, the agents their own listener (src/sim/index.ts).
  const who = this._isServer
    ? 'gateway sends'
    : this.url.includes(`:${sim.port}/`)
      ? 'daemon sends '
      : 'agent sends  ';
  const what = Buffer.isBuffer(data)
    ? data.subarray(4, 36).toString('latin1').trim()
    : `text ${String(data).slice(0, 30)}...`;
  if (what !== 'acknowledge') mark(`${who} ${what}`);
  return (send as (...a: unknown[]) => void).call(this, data, ...rest);
} as typeof send;

try {
  const aws = createSsmGateway({
    region: sim.region,
    endpoint: sim.endpoint,
    credentials: { accessKeyId: sim.accessKeyId, secretAccessKey: sim.secretAccessKey },
  });
  const warm = await aws.startSession(TARGET, DOCUMENT_REMOTE_HOST, params);
  // Stamp the daemon's own steps between StartSession and the upgrade too.
  for (const k of ['startSession', 'signStreamUrl'] as const) {
    const orig = aws[k].bind(aws) as (...a: unknown[]) => Promise<unknown>;
    (aws as unknown as Record<string, unknown>)[k] = async (...a: unknown[]) => {
      mark(`daemon calls   ${k}`);
      const r = await orig(...a);
      mark(`daemon has     ${k}`);
      return r;
    };
  }
  const emit = WebSocket.prototype.emit;
  WebSocket.prototype.emit = function (
    this: WebSocket & { _isServer?: boolean },
    ev: string,
    ...a: unknown[]
  ) {
    if (ev === 'open' && !this._isServer) mark('ws open (upgrade answered)');
    if (ev === 'message' && !this._isServer && process.env.TRACE_IN) {
      const d = a[0] as Buffer;
      const what = Buffer.isBuffer(d) ? d.subarray(4, 36).toString('latin1').trim() : 'text';
      if (what !== 'acknowledge')
        mark(
          `  ${(this as unknown as { url: string }).url.includes(`:${sim.port}/`) ? 'daemon' : 'agent'} got ${what}`,
        );
    }
    return (emit as (...x: unknown[]) => boolean).call(this, ev, ...a);
  } as typeof emit;
  await new Promise((r) => setTimeout(r, 5 * rtt));
  // Earlier opens run code for the first time (V8 compiles it then); the last one is what a daemon
  // that has opened before pays, which is what the bench's median shows.
  for (let run = 1; run <= runs; run++) {
    lines.length = 0;
    t0 = performance.now();
    const session = await openOnce(aws);
    mark('first byte back');
    await session.terminate();
  }
  process.stdout.write(
    `lazy open ${runs} of ${runs} at ${rtt} ms RTT (session ${warm.sessionId} was the SDK warm-up; its agent's frames may show first)\n${lines.join('\n')}\n`,
  );
} finally {
  await sim.close();
  await echo.close();
}
process.exit(0);

async function openOnce(aws: ReturnType<typeof createSsmGateway>): Promise<ClientSession> {
  return await new Promise<ClientSession>((resolve) => {
    ClientSession.start({
      aws,
      target: TARGET,
      documentName: DOCUMENT_REMOTE_HOST,
      parameters: params,
      logger: pino({ level: 'silent' }),
      handlers: {
        data: () => resolve(session),
        remoteClosed() {},
        connectToPortError() {},
        drain() {},
        reconnecting() {},
        reconnected() {},
        closed() {},
      },
    }).then((s) => {
      session = s;
      mark('ClientSession.start resolved (HandshakeComplete in)');
      s.write(s.openConnection(), Buffer.from('hello'));
    });
    let session: ClientSession;
  });
}
