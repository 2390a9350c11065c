/**
 * The simulated Session Manager service's view of sessions: what StartSession created, which
 * single-use tokens the client may present in its OpenDataChannel frame, and whether the session is
 * still alive. Shared by the SSM API (src/sim/ssm-api.ts) and the data-channel gateway.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';

export interface SimInstance {
  id: string;
  tags: Record<string, string>;
  pingStatus: 'Online' | 'ConnectionLost';
  agentVersion: string;
}

export type SimSessionStatus = 'Connected' | 'Terminated';

export interface SimSession {
  sessionId: string;
  target: string;
  documentName: string;
  /** The document parameters with the document's defaults filled in (what the agent would substitute). */
  parameters: Record<string, string[]>;
  status: SimSessionStatus;
  createdAt: number;
  terminatedAt?: number;
  terminateReason?: string;
  /** StartSession's optional Reason. */
  reason?: string;
  /** Access key of the caller that started it. */
  owner?: string;
}

export interface SessionRegistryOptions {
  /** The `<user>` part of session ids; the real service uses the caller's user or role-session name. */
  sessionIdPrefix?: string;
  now?: () => number;
}

export interface SessionRegistryEvents {
  started: [session: SimSession];
  terminated: [session: SimSession, reason: string];
  resumed: [session: SimSession];
}

export class SessionRegistry extends EventEmitter<SessionRegistryEvents> {
  /**
   * Every client token ever issued, so tests can prove a client never writes one to its logs. The
   * simulator's tokens are fake; a real service would never expose them.
   */
  readonly issued: string[] = [];

  private readonly sessions = new Map<string, SimSession>();
  /** Unused tokens per session; every issued token stays valid until used or the session ends. */
  private readonly tokens = new Map<string, Set<string>>();
  /** Sessions that already had their StartSession token, so later issues are resumes. */
  private readonly issuedOnce = new Set<string>();
  private readonly prefix: string;
  private readonly now: () => number;

  constructor(opts: SessionRegistryOptions = {}) {
    super();
    this.prefix = opts.sessionIdPrefix ?? 'ssmtun';
    this.now = opts.now ?? Date.now;
  }

  create(
    target: string,
    documentName: string,
    parameters: Record<string, string[]>,
    extra: { reason?: string; owner?: string } = {},
  ): SimSession {
    let sessionId: string;
    do {
      sessionId = `${this.prefix}-${randomBytes(9).toString('hex').slice(0, 17)}`;
    } while (this.sessions.has(sessionId));
    const session: SimSession = {
      sessionId,
      target,
      documentName,
      parameters: structuredClone(parameters),
      status: 'Connected',
      createdAt: this.now(),
      ...(extra.reason !== undefined ? { reason: extra.reason } : {}),
      ...(extra.owner !== undefined ? { owner: extra.owner } : {}),
    };
    this.sessions.set(sessionId, session);
    this.tokens.set(sessionId, new Set());
    this.emit('started', session);
    return session;
  }

  get(sessionId: string): SimSession | undefined {
    return this.sessions.get(sessionId);
  }

  /**
   * A fresh single-use client token for the session (StartSession and each ResumeSession issue one).
   * Every issue after the first counts as a resume and emits 'resumed'. Throws for unknown or
   * terminated sessions because handing out a token for them would be a service bug.
   */
  issueClientToken(sessionId: string): string {
    const session = this.sessions.get(sessionId);
    const pending = this.tokens.get(sessionId);
    if (!session || !pending || session.status === 'Terminated') {
      throw new Error(`cannot issue a token for ${session ? 'terminated' : 'unknown'} session ${sessionId}`);
    }
    const token = randomBytes(48).toString('base64url');
    pending.add(token);
    this.issued.push(token);
    if (this.issuedOnce.has(sessionId)) {
      this.emit('resumed', session);
    } else {
      this.issuedOnce.add(sessionId);
    }
    return token;
  }

  /** true once per valid unused token of a live session; marks it used. */
  consumeClientToken(sessionId: string, token: string): boolean {
    const session = this.sessions.get(sessionId);
    if (session?.status !== 'Connected') return false;
    const pending = this.tokens.get(sessionId);
    if (!pending?.has(token)) return false;
    pending.delete(token);
    return true;
  }

  /** Ends a session; true only for the call that actually ended it (later calls are no-ops). */
  terminate(sessionId: string, reason: string): boolean {
    const session = this.sessions.get(sessionId);
    if (!session || session.status === 'Terminated') return false;
    session.status = 'Terminated';
    session.terminatedAt = this.now();
    session.terminateReason = reason;
    this.tokens.get(sessionId)?.clear();
    this.emit('terminated', session, reason);
    return true;
  }

  list(): SimSession[] {
    return [...this.sessions.values()];
  }
}
