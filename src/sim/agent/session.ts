/**
 * One simulated Port session on the agent's side, behaving like the real amazon-ssm-agent (SPEC 8,
 * 10, 11, 16), quirks included: the session's life (start, reconnect after a dropped WebSocket, the
 * three ways it ends, SPEC 11.2-11.5) and the routing of stream messages to the handshake, the port
 * forwarder (mux.ts or basic.ts) and the flags (SPEC 10.7). The rest of the agent is in this folder,
 * one file per concern; this file only wires them together.
 */

import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { type Logger, pino } from 'pino';
import WebSocket from 'ws';
import type { DataChannel } from '../../protocol/data-channel.js';
import {
  type DecodedMessage,
  decodeFlag,
  decodeMessage,
  PayloadFlag,
  PayloadType,
} from '../../protocol/message.js';
import { sendBatched } from '../../shared/batched-write.js';
import { mulberry32 } from '../random.js';
import { BasicForwarder } from './basic.js';
import { createAgentDataChannel, OutputPump } from './channel.js';
import { checkClientMessage } from './checks.js';
import { agentSessionState, ChannelDialer, startPublication } from './connection.js';
import { Destinations } from './destinations.js';
import { AgentHandshake } from './handshake.js';
import { MuxForwarder } from './mux.js';
import type {
  AgentContext,
  AgentCounters,
  EndHow,
  SimAgentEvents,
  SimAgentOptions,
  SimAgentStats,
} from './options.js';
import { agentDecision, StuckMessage, WsKeepalive } from './quirks.js';

const RESEND_TICK_MS = 100;
/** Until the HandshakeRequest is acked: the real agent resends it every 100-200 ms. */
const HANDSHAKE_TICK_MS = 10;
const DRAIN_WAIT_MS = 2_000;
const DRAIN_POLL_MS = 10;
const DEFAULT_DESTINATION_BUFFER = 4 * 1024 * 1024;
const MAX_VIOLATIONS = 1000;

type State = 'new' | 'handshake' | 'running' | 'ending' | 'ended';

export class SimAgent extends EventEmitter<SimAgentEvents> {
  private readonly opts: SimAgentOptions;
  private readonly log: Logger;
  private readonly ctx: AgentContext;
  private readonly dc: DataChannel;
  private readonly dialer: ChannelDialer;
  private readonly keepalive: WsKeepalive;
  private readonly stuck: StuckMessage;
  private readonly handshake: AgentHandshake;
  private readonly dest: Destinations;
  private readonly out: OutputPump;
  private readonly mux: MuxForwarder;
  private readonly basic: BasicForwarder;

  private state: State = 'new';
  private endReason: string | undefined;
  private ws: WebSocket | undefined;
  private reconnecting = false;
  private tickTimer: NodeJS.Timeout | undefined;
  private readyEmitted = false;
  private mode: 'mux' | 'basic' | undefined;

  private readonly counters: AgentCounters = {
    streamsAccepted: 0,
    dialFailures: 0,
    discardedBeforeHandshake: 0,
    reconnects: 0,
    bytesToDestination: 0,
    bytesFromDestination: 0,
    stuckAcksDropped: 0,
  };
  private readonly violations: string[] = [];

  constructor(opts: SimAgentOptions) {
    super();
    this.opts = opts;
    this.log = (opts.logger ?? pino({ level: 'silent' })).child({ sim: 'agent', sessionId: opts.sessionId });
    this.ctx = {
      opts,
      log: this.log,
      rand: mulberry32(opts.seed ?? Math.floor(Math.random() * 2 ** 32)),
      counters: this.counters,
      isEnding: () => this.isEnding(),
      finish: (reason, how) => this.finish(reason, how),
    };
    const pacing = opts.pacing ?? true;
    this.dialer = new ChannelDialer(this.ctx, randomUUID());
    this.dc = createAgentDataChannel(pacing, opts.reackDuplicates ?? true, {
      send: (frame) => this.sendFrame(frame),
      deliver: (msg) => this.deliver(msg),
      onChannelClosed: (c) => this.finish(`channel_closed${c.Output ? `: ${c.Output}` : ''}`, 'close'),
      onError: (err) => this.finish(`data channel failed: ${err.message}`, 'close'),
      onInvalid: (err) => this.log.debug({ err: err.message }, 'dropped malformed frame'),
      onDrain: () => this.out.kick(),
    });
    this.keepalive = new WsKeepalive(this.ctx);
    this.stuck = new StuckMessage(this.ctx);
    const sendStream = (type: number, payload: Buffer) => this.sendStream(type, payload);
    this.handshake = new AgentHandshake(this.ctx, {
      sendStream,
      completed: (clientVersion) => this.onHandshakeComplete(clientVersion),
    });
    this.dest = new Destinations(
      this.ctx,
      opts.maxDestinationBufferBytes ?? DEFAULT_DESTINATION_BUFFER,
      () => this.mux.pendingBytes() + this.basic.pendingBytes(),
      () => this.dc.retryDelivery(),
    );
    this.out = new OutputPump(
      {
        canSend: () => this.state === 'running' && this.dc.writable && !this.dc.isPaused,
        isEnding: () => this.isEnding(),
        sendStream,
        setReading: (canSend, room) => this.dest.setReading(canSend && (this.mode === 'mux' || room)),
        refill: () => this.mux.refill(),
      },
      pacing,
    );
    this.mux = new MuxForwarder(this.ctx, this.dest, this.out);
    this.basic = new BasicForwarder(this.ctx, this.dest, this.out, {
      ready: () => this.emitReady(),
      retryDelivery: () => this.dc.retryDelivery(),
    });
  }

  get ended(): boolean {
    return this.state === 'ended';
  }

  stats(): SimAgentStats {
    return {
      mode: this.mode,
      clientVersion: this.handshake.clientVersion,
      ...this.counters,
      violations: [...this.violations],
      dataChannel: this.dc.stats(),
    };
  }

  /** POST + WebSocket + HandshakeRequest; resolves once the WebSocket is open. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error('SimAgent already started');
    this.state = 'handshake';
    let ws: WebSocket;
    try {
      ws = await this.dialer.connectWithRetry();
    } catch (err) {
      if (this.isEnding()) return; // stopped while connecting
      this.finish(`unable to open data channel: ${(err as Error).message}`, 'close');
      throw err;
    }
    if (this.isEnding()) {
      ws.terminate();
      return;
    }
    this.attach(ws);
    ws.send(agentSessionState(this.opts.sessionId));
    this.dc.setConnected(true);
    this.handshake.begin();
    this.scheduleTick();
  }

  /** Immediate end: destinations and WebSocket closed at once, 'ended' emitted before returning. */
  stop(reason = 'stopped'): void {
    this.finish(reason, 'terminate');
  }

  // ---- the WebSocket: attach, reconnect, frames ------------------------------------------------------

  private attach(ws: WebSocket): void {
    this.ws = ws;
    ws.on('message', (data: Buffer) => this.onFrame(data));
    ws.on('error', (err) => this.log.debug({ err: err.message }, 'WebSocket error'));
    ws.on('close', () => {
      if (ws !== this.ws) return;
      this.ws = undefined;
      this.keepalive.stop();
      if (this.state === 'ending') this.completeEnd(this.endReason ?? 'WebSocket closed');
      else if (this.state === 'handshake' || this.state === 'running') void this.reconnect();
    });
    this.keepalive.attach(ws);
  }

  private async reconnect(): Promise<void> {
    if (this.reconnecting) return;
    this.reconnecting = true;
    this.dc.setConnected(false);
    this.log.debug('WebSocket dropped; reconnecting');
    let ws: WebSocket;
    try {
      ws = await this.dialer.connectWithRetry();
    } catch (err) {
      this.reconnecting = false;
      this.finish(`data channel reconnect failed: ${(err as Error).message}`, 'close');
      return;
    }
    this.reconnecting = false;
    if (this.isEnding()) {
      ws.terminate();
      return;
    }
    this.counters.reconnects++;
    this.attach(ws);
    this.dc.receive(startPublication());
    this.dc.setConnected(true);
    this.out.kick();
  }

  private sendFrame(frame: Buffer): void {
    const ws = this.ws;
    if (ws) sendBatched(ws, frame);
  }

  private sendStream(payloadType: number, payload: Buffer): number {
    const seq = this.dc.sendStream(payloadType, payload);
    this.stuck.sent(seq);
    return seq;
  }

  private onFrame(data: Buffer): void {
    if (this.state === 'ended') return;
    const decoded = decodeMessage(data);
    if (!decoded.ok) {
      this.violation(`${decoded.error.code}: ${decoded.error.message}`);
    } else {
      checkClientMessage(decoded.message, (text) => this.violation(text));
      if (this.stuck.swallows(decoded.message)) return;
    }
    const wasPaused = this.dc.isPaused;
    if (decoded.ok) this.dc.receiveMessage(decoded.message);
    else this.dc.receive(data);
    if (wasPaused !== this.dc.isPaused) this.out.kick();
  }

  private violation(text: string): void {
    if (this.violations.length < MAX_VIOLATIONS) this.violations.push(text);
  }

  // ---- timers -------------------------------------------------------------------------------------

  private scheduleTick(): void {
    if (this.state === 'ended') return;
    const fast = !this.handshake.done && this.dc.unackedCount > 0;
    this.tickTimer = setTimeout(
      () => {
        this.tickTimer = undefined;
        this.tick();
        this.scheduleTick();
      },
      fast ? HANDSHAKE_TICK_MS : RESEND_TICK_MS,
    );
    this.tickTimer.unref();
  }

  private tick(): void {
    const now = Date.now();
    this.dc.tick();
    if (this.state === 'running') this.mux.tick(now);
    const ws = this.ws;
    if (ws && ws.readyState === WebSocket.OPEN && this.keepalive.expired(now)) {
      this.log.debug('no pong in time; treating the WebSocket as dead');
      ws.terminate();
    }
  }

  // ---- stream messages ------------------------------------------------------------------------------

  private deliver(msg: DecodedMessage): boolean {
    if (this.isEnding()) return true;
    if (!this.handshake.done) return this.handshake.receive(msg);
    switch (msg.payloadType) {
      case PayloadType.Output:
        return this.mode === 'mux' ? this.mux.input(msg.payload) : this.basic.input(msg.payload);
      case PayloadType.Flag:
        return this.onFlag(decodeFlag(msg.payload));
      default:
        return true;
    }
  }

  private onHandshakeComplete(clientVersion: string | undefined): void {
    this.state = 'running';
    const decision = agentDecision(this.ctx, clientVersion);
    this.mode = decision.mode;
    this.log.debug({ mode: decision.mode, keepalive: decision.smuxKeepalive }, 'handshake complete');
    if (decision.mode === 'mux') {
      this.mux.start(decision.smuxKeepalive);
      this.emitReady();
    } else {
      this.basic.start();
    }
  }

  private emitReady(): void {
    if (this.readyEmitted || !this.mode) return;
    this.readyEmitted = true;
    this.emit('ready', this.mode);
  }

  /** SPEC 10.7: TerminateSession ends the session; DisconnectToPort matters in basic mode only. */
  private onFlag(flag: number | undefined): boolean {
    if (flag === PayloadFlag.TerminateSession) {
      this.finish('TerminateSession flag received', 'drain');
      return true;
    }
    if (flag === PayloadFlag.DisconnectToPort && this.mode === 'basic') return this.basic.disconnect();
    return true;
  }

  // ---- the end ---------------------------------------------------------------------------------------------

  private isEnding(): boolean {
    return this.state === 'ending' || this.state === 'ended';
  }

  /**
   * Ends the session once. 'drain' waits up to 2 s (polling every 10 ms) for everything sent to be
   * acked, as the agent's PrepareToCloseChannel does; 'close' closes the WebSocket at once;
   * 'terminate' drops TCP and emits 'ended' synchronously.
   */
  private finish(reason: string, how: EndHow): void {
    if (this.isEnding()) {
      // stop() during a drain still has to be immediate.
      if (how === 'terminate' && this.state === 'ending') {
        this.ws?.terminate();
        this.completeEnd(this.endReason ?? reason);
      }
      return;
    }
    this.state = 'ending';
    this.endReason = reason;
    this.log.debug({ reason }, 'session ending');
    this.handshake.cancel();
    this.mux.close();
    this.dest.destroyAll();
    this.basic.clear();
    this.out.clear();

    if (how === 'terminate') {
      this.ws?.terminate();
      this.completeEnd(reason);
      return;
    }
    const deadline = Date.now() + (how === 'drain' ? DRAIN_WAIT_MS : 0);
    // Never close synchronously: the ack for the message that triggered the end is sent after
    // deliver() returns and must reach the socket first.
    const poll = () => {
      if (this.state !== 'ending') return;
      const ws = this.ws;
      if (!ws || ws.readyState !== WebSocket.OPEN || this.dc.unackedCount === 0 || Date.now() >= deadline) {
        this.closeWebSocket();
        this.completeEnd(reason);
        return;
      }
      setTimeout(poll, DRAIN_POLL_MS).unref();
    };
    setTimeout(poll, how === 'drain' ? DRAIN_POLL_MS : 0).unref();
  }

  private closeWebSocket(): void {
    const ws = this.ws;
    if (!ws) return;
    if (ws.readyState === WebSocket.OPEN) {
      ws.close(1000);
      // A close frame is harmless; don't linger if the peer never answers it.
      setTimeout(() => ws.terminate(), 1000).unref();
    } else {
      ws.terminate();
    }
  }

  private completeEnd(reason: string): void {
    if (this.state === 'ended') return;
    this.state = 'ended';
    if (this.tickTimer) clearTimeout(this.tickTimer);
    this.tickTimer = undefined;
    this.keepalive.stop();
    this.dc.close();
    this.ws = undefined;
    this.log.debug({ reason }, 'session ended');
    this.emit('ended', reason);
  }
}
