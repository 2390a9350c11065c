/**
 * The agent's half of the handshake (SPEC 8, 16 "handshake as seen"): HandshakeRequest with the
 * document's properties (resent by the data channel until acked), a 15 s wait for the
 * HandshakeResponse, every other stream message acked and dropped meanwhile (the SPEC 7.3 trap), then
 * HandshakeComplete with the time it took in nanoseconds, before or after the ack (quirks.ts).
 */

import type { DecodedMessage } from '../../protocol/message.js';
import { PayloadType } from '../../protocol/message.js';
import {
  ActionStatus,
  buildHandshakeComplete,
  buildHandshakeRequest,
  parseHandshakeResponse,
} from '../../protocol/payloads.js';
import { AGENT_HANDSHAKE_TIMEOUT_MS, type AgentContext, HANDSHAKE_TIMEOUT_REASON } from './options.js';
import { completeBeforeAck } from './quirks.js';

export interface HandshakeHost {
  sendStream(payloadType: number, payload: Buffer): number;
  /** HandshakeComplete is on its way: the session runs from here. */
  completed(clientVersion: string | undefined): void;
}

export class AgentHandshake {
  private timer: NodeJS.Timeout | undefined;
  private sentAt = 0;
  private responded = false;
  private completeSent = false;
  private clientVersionSeen: string | undefined;

  constructor(
    private readonly ctx: AgentContext,
    private readonly host: HandshakeHost,
  ) {}

  /** HandshakeComplete has been sent. */
  get done(): boolean {
    return this.completeSent;
  }

  get clientVersion(): string | undefined {
    return this.clientVersionSeen;
  }

  /** Sends the HandshakeRequest and starts the agent's handshake timeout. */
  begin(): void {
    this.sentAt = performance.now();
    this.host.sendStream(
      PayloadType.HandshakeRequest,
      buildHandshakeRequest({
        AgentVersion: this.ctx.opts.agentVersion,
        RequestedClientActions: [
          {
            ActionType: 'SessionType',
            ActionParameters: { SessionType: 'Port', Properties: this.properties() },
          },
        ],
      }),
    );
    this.timer = setTimeout(
      () => this.ctx.finish(HANDSHAKE_TIMEOUT_REASON, 'close'),
      this.ctx.opts.handshakeTimeoutMs ?? AGENT_HANDSHAKE_TIMEOUT_MS,
    );
    this.timer.unref();
  }

  /** A stream message before HandshakeComplete; always taken (acked). */
  receive(msg: DecodedMessage): boolean {
    if (msg.payloadType === PayloadType.HandshakeResponse && !this.responded) return this.onResponse(msg);
    // The real agent acks and drops anything else while its handshake runs (SPEC 7.3 trap).
    this.ctx.counters.discardedBeforeHandshake++;
    return true;
  }

  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private properties(): Record<string, string> {
    const p = this.ctx.opts.properties as Record<string, string | undefined>;
    const props: Record<string, string> = {};
    for (const key of Object.keys(p).sort()) {
      const value = p[key];
      if (value !== undefined) props[key] = String(value);
    }
    return props;
  }

  private onResponse(msg: DecodedMessage): boolean {
    const res = parseHandshakeResponse(msg.payload);
    if (!res) {
      this.ctx.finish('Handshake failed: malformed HandshakeResponse', 'drain');
      return true;
    }
    this.cancel();
    for (const action of res.ProcessedClientActions) {
      if (action.ActionStatus !== ActionStatus.Success) {
        this.ctx.finish(
          `Handshake failed: ${action.ActionType} status ${action.ActionStatus}${action.Error ? `: ${action.Error}` : ''}`,
          'drain',
        );
        return true;
      }
    }
    this.clientVersionSeen = res.ClientVersion;
    this.responded = true;
    if (completeBeforeAck(this.ctx)) this.sendComplete();
    else queueMicrotask(() => this.sendComplete());
    return true;
  }

  private sendComplete(): void {
    if (this.ctx.isEnding() || this.completeSent) return;
    const ns = Math.max(1, Math.round((performance.now() - this.sentAt) * 1e6));
    this.host.sendStream(
      PayloadType.HandshakeComplete,
      buildHandshakeComplete({ HandshakeTimeToComplete: ns, CustomerMessage: '' }),
    );
    this.completeSent = true;
    this.host.completed(this.clientVersionSeen);
  }
}
