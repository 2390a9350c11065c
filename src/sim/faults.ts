/**
 * Seedable fault injection on the gateway's relay (SPEC 12 item 10). Each spec is one stage of a
 * pipeline a frame passes through on its way to the other side; a stage may drop, duplicate, hold back
 * (reorder) or delay it, or kill a socket after a number of frames. Random decisions come from one
 * PRNG stream per (stage, direction, session), so a session's decisions depend only on the seed and
 * the frames of that session in that direction, not on how other sessions interleave with it.
 */

import { frameSequence, isStreamData } from './frames.js';
import { hashKey, mulberry32 } from './random.js';

// Kept here too for the callers that imported them from this file before frames.ts and random.ts.
export { frameSequence, frameTypeIs, isStreamData } from './frames.js';
export { mulberry32 } from './random.js';

export type FaultDirection = 'client->agent' | 'agent->client';
export type FaultSide = 'client' | 'agent';

export interface FaultSpec {
  direction: FaultDirection | 'both';
  /** Probability of silently dropping a frame. */
  drop?: number;
  /** Probability of forwarding a frame twice. */
  duplicate?: number;
  /** Probability of holding a frame back and releasing it right after the next one. */
  reorder?: number;
  /** Added latency; frames stay in order (like a slow link), so only `reorder` reorders. */
  delayMs?: number;
  /** Extra random latency in [0, jitterMs). */
  jitterMs?: number;
  /** Exact stream sequence numbers (input/output_stream_data) to drop, once each per session. */
  dropSeqs?: number[];
  /** Kill that side's socket right after this many frames matched this spec (once per session). */
  killAfterFrames?: { side: FaultSide; frames: number };
  /** Apply to input/output_stream_data only, letting acks and control messages through (default false). */
  onlyStreamData?: boolean;
  /** Restrict to one session (default: all). */
  sessionId?: string;
}

export interface FaultCounters {
  /** Frames handed to the injector. */
  frames: number;
  /** Frames that left the pipeline (duplicates count twice). */
  forwarded: number;
  dropped: number;
  duplicated: number;
  reordered: number;
  delayed: number;
  kills: number;
}

export interface FaultStats {
  'client->agent': FaultCounters;
  'agent->client': FaultCounters;
  sessions: Record<string, { 'client->agent': FaultCounters; 'agent->client': FaultCounters }>;
}

export type FaultSpecErrorCode = 'INVALID_FAULT_SPEC';

export class FaultSpecError extends Error {
  readonly code: FaultSpecErrorCode = 'INVALID_FAULT_SPEC';
  constructor(message: string) {
    super(message);
    this.name = 'FaultSpecError';
  }
}

/** A held frame is released after this long if no later frame comes to overtake it. */
export const REORDER_HOLD_MS = 50;

function zeroCounters(): FaultCounters {
  return { frames: 0, forwarded: 0, dropped: 0, duplicated: 0, reordered: 0, delayed: 0, kills: 0 };
}

function isProbability(v: unknown): boolean {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= 1;
}

function isNonNegative(v: unknown): boolean {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0;
}

/** Validates untrusted input (e.g. the body of POST /_sim/faults); throws FaultSpecError. */
export function validateFaultSpecs(input: unknown): FaultSpec[] {
  if (!Array.isArray(input)) throw new FaultSpecError('fault specs must be a JSON array');
  return input.map((raw, i) => {
    const where = `faults[${i}]`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new FaultSpecError(`${where} must be an object`);
    }
    const s = raw as Record<string, unknown>;
    const known = new Set([
      'direction',
      'drop',
      'duplicate',
      'reorder',
      'delayMs',
      'jitterMs',
      'dropSeqs',
      'killAfterFrames',
      'onlyStreamData',
      'sessionId',
    ]);
    for (const k of Object.keys(s)) {
      if (!known.has(k)) throw new FaultSpecError(`${where}.${k} is not a fault option`);
    }
    if (s.direction !== 'client->agent' && s.direction !== 'agent->client' && s.direction !== 'both') {
      throw new FaultSpecError(`${where}.direction must be 'client->agent', 'agent->client' or 'both'`);
    }
    for (const k of ['drop', 'duplicate', 'reorder']) {
      if (s[k] !== undefined && !isProbability(s[k])) {
        throw new FaultSpecError(`${where}.${k} must be a probability between 0 and 1`);
      }
    }
    for (const k of ['delayMs', 'jitterMs']) {
      if (s[k] !== undefined && !isNonNegative(s[k])) {
        throw new FaultSpecError(`${where}.${k} must be a non-negative number of milliseconds`);
      }
    }
    if (
      s.dropSeqs !== undefined &&
      (!Array.isArray(s.dropSeqs) || s.dropSeqs.some((n) => !Number.isSafeInteger(n) || (n as number) < 0))
    ) {
      throw new FaultSpecError(`${where}.dropSeqs must be an array of non-negative integers`);
    }
    if (s.killAfterFrames !== undefined) {
      const k = s.killAfterFrames as Record<string, unknown> | null;
      if (
        typeof k !== 'object' ||
        k === null ||
        (k.side !== 'client' && k.side !== 'agent') ||
        !Number.isSafeInteger(k.frames) ||
        (k.frames as number) < 1
      ) {
        throw new FaultSpecError(`${where}.killAfterFrames must be { side: 'client'|'agent', frames: >= 1 }`);
      }
    }
    if (s.onlyStreamData !== undefined && typeof s.onlyStreamData !== 'boolean') {
      throw new FaultSpecError(`${where}.onlyStreamData must be a boolean`);
    }
    if (s.sessionId !== undefined && (typeof s.sessionId !== 'string' || s.sessionId.length === 0)) {
      throw new FaultSpecError(`${where}.sessionId must be a non-empty string`);
    }
    return structuredClone(s) as unknown as FaultSpec;
  });
}

type Forward = (frame: Buffer) => void;
type Kill = (side: FaultSide) => void;

interface Delayed {
  frame: Buffer;
  at: number;
  next: Forward;
}

/** Per (stage, direction, session) state: the PRNG stream, the held frame, the delay line. */
interface StreamState {
  rng: () => number;
  held?: { frame: Buffer; next: Forward; timer: NodeJS.Timeout };
  line: Delayed[];
  lineTimer?: NodeJS.Timeout;
  lastAt: number;
}

/** Per (stage, session) state shared by both directions of a 'both' spec. */
interface SessionState {
  matched: number;
  killed: boolean;
  dropSeqs: Set<number>;
}

class Stage {
  private readonly streams = new Map<string, StreamState>();
  private readonly sessions = new Map<string, SessionState>();

  constructor(
    readonly spec: FaultSpec,
    private readonly index: number,
    private readonly seed: number,
    private readonly owner: FaultInjector,
  ) {}

  matches(direction: FaultDirection, sessionId: string, frame: Buffer): boolean {
    const s = this.spec;
    if (s.direction !== 'both' && s.direction !== direction) return false;
    if (s.sessionId !== undefined && s.sessionId !== sessionId) return false;
    if (s.onlyStreamData && !isStreamData(frame)) return false;
    return true;
  }

  apply(direction: FaultDirection, sessionId: string, frame: Buffer, next: Forward, kill: Kill): void {
    const s = this.spec;
    const stream = this.stream(direction, sessionId);
    const session = this.session(sessionId);
    const counters = this.owner.countersFor(direction, sessionId);
    session.matched++;

    let dropped = false;
    if (session.dropSeqs.size > 0 && isStreamData(frame)) {
      const seq = frameSequence(frame);
      if (seq !== undefined && session.dropSeqs.delete(seq)) dropped = true;
    }
    // Draw for every configured probability on every frame so one decision never shifts the others.
    const dropDraw = s.drop ? stream.rng() : 1;
    const dupDraw = s.duplicate ? stream.rng() : 1;
    if (!dropped && s.drop && dropDraw < s.drop) dropped = true;

    if (dropped) {
      counters.dropped++;
    } else {
      const copies = s.duplicate && dupDraw < s.duplicate ? 2 : 1;
      if (copies === 2) counters.duplicated++;
      for (let i = 0; i < copies; i++) this.reorderStep(stream, counters, frame, next);
    }

    const k = s.killAfterFrames;
    if (k && !session.killed && session.matched >= k.frames) {
      session.killed = true;
      counters.kills++;
      kill(k.side);
    }
  }

  private reorderStep(stream: StreamState, counters: FaultCounters, frame: Buffer, next: Forward): void {
    const held = stream.held;
    if (held) {
      stream.held = undefined;
      clearTimeout(held.timer);
      counters.reordered++;
      this.delayStep(stream, counters, frame, next);
      this.delayStep(stream, counters, held.frame, held.next);
      return;
    }
    if (this.spec.reorder && stream.rng() < this.spec.reorder) {
      const timer = setTimeout(() => {
        if (stream.held?.frame !== frame) return;
        stream.held = undefined;
        this.delayStep(stream, counters, frame, next);
      }, REORDER_HOLD_MS);
      timer.unref?.();
      stream.held = { frame, next, timer };
      return;
    }
    this.delayStep(stream, counters, frame, next);
  }

  private delayStep(stream: StreamState, counters: FaultCounters, frame: Buffer, next: Forward): void {
    const base = this.spec.delayMs ?? 0;
    const jitter = this.spec.jitterMs ? stream.rng() * this.spec.jitterMs : 0;
    const delay = base + jitter;
    if (delay <= 0 && stream.line.length === 0) {
      next(frame);
      return;
    }
    counters.delayed++;
    const now = Date.now();
    // FIFO: a frame never leaves before one that entered the line ahead of it.
    const at = Math.max(stream.lastAt, now + delay);
    stream.lastAt = at;
    stream.line.push({ frame, at, next });
    if (!stream.lineTimer) this.armLine(stream);
  }

  private armLine(stream: StreamState): void {
    const head = stream.line[0];
    if (!head) return;
    stream.lineTimer = setTimeout(
      () => {
        stream.lineTimer = undefined;
        const now = Date.now();
        while (stream.line.length > 0 && stream.line[0].at <= now) {
          const d = stream.line.shift()!;
          d.next(d.frame);
        }
        this.armLine(stream);
      },
      Math.max(0, head.at - Date.now()),
    );
  }

  /** Lets go of held frames right away (on `set`), so replacing the specs never loses data. */
  releaseHeld(): void {
    for (const stream of this.streams.values()) {
      const held = stream.held;
      if (!held) continue;
      stream.held = undefined;
      clearTimeout(held.timer);
      held.next(held.frame);
    }
  }

  dispose(): void {
    for (const stream of this.streams.values()) {
      if (stream.held) clearTimeout(stream.held.timer);
      stream.held = undefined;
      if (stream.lineTimer) clearTimeout(stream.lineTimer);
      stream.lineTimer = undefined;
      stream.line.length = 0;
    }
  }

  private stream(direction: FaultDirection, sessionId: string): StreamState {
    const key = `${direction}|${sessionId}`;
    let st = this.streams.get(key);
    if (!st) {
      st = { rng: mulberry32(hashKey(this.seed, `${this.index}|${key}`)), line: [], lastAt: 0 };
      this.streams.set(key, st);
    }
    return st;
  }

  private session(sessionId: string): SessionState {
    let st = this.sessions.get(sessionId);
    if (!st) {
      st = { matched: 0, killed: false, dropSeqs: new Set(this.spec.dropSeqs ?? []) };
      this.sessions.set(sessionId, st);
    }
    return st;
  }
}

export class FaultInjector {
  private stages: Stage[] = [];
  private readonly seed: number;
  private readonly perSession = new Map<
    string,
    { 'client->agent': FaultCounters; 'agent->client': FaultCounters }
  >();

  constructor(specs: FaultSpec[] = [], seed = 1) {
    this.seed = seed >>> 0;
    this.set(specs);
  }

  /** Whether any spec is active; the gateway skips the injector entirely when not. */
  get active(): boolean {
    return this.stages.length > 0;
  }

  get specs(): FaultSpec[] {
    return this.stages.map((s) => structuredClone(s.spec));
  }

  /** Replaces the specs. Per-spec state (PRNG position, kill and dropSeqs bookkeeping) starts afresh. */
  set(specs: FaultSpec[]): void {
    const old = this.stages;
    this.stages = specs.map((spec, i) => new Stage(structuredClone(spec), i, this.seed, this));
    for (const stage of old) stage.releaseHeld();
  }

  /**
   * Passes one frame through the pipeline. `forward` receives whatever leaves it, now or later (delay,
   * reorder); `kill` is asked to cut a side's socket. `sessionId` scopes specs and statistics.
   */
  apply(direction: FaultDirection, frame: Buffer, forward: Forward, kill: Kill, sessionId = ''): void {
    this.countersFor(direction, sessionId).frames++;
    const stages = this.stages;
    const run = (i: number, f: Buffer): void => {
      for (; i < stages.length; i++) {
        const stage = stages[i];
        if (stage.matches(direction, sessionId, f)) {
          const from = i + 1;
          stage.apply(direction, sessionId, f, (g) => run(from, g), kill);
          return;
        }
      }
      this.countersFor(direction, sessionId).forwarded++;
      forward(f);
    };
    run(0, frame);
  }

  /** Counters to update for a frame; totals are derived in `stats`. */
  countersFor(direction: FaultDirection, sessionId: string): FaultCounters {
    let s = this.perSession.get(sessionId);
    if (!s) {
      s = { 'client->agent': zeroCounters(), 'agent->client': zeroCounters() };
      this.perSession.set(sessionId, s);
    }
    return s[direction];
  }

  sessionStats(sessionId: string): { 'client->agent': FaultCounters; 'agent->client': FaultCounters } {
    const s = this.perSession.get(sessionId);
    return s
      ? { 'client->agent': { ...s['client->agent'] }, 'agent->client': { ...s['agent->client'] } }
      : { 'client->agent': zeroCounters(), 'agent->client': zeroCounters() };
  }

  get stats(): FaultStats {
    const totals = { 'client->agent': zeroCounters(), 'agent->client': zeroCounters() };
    const sessions: FaultStats['sessions'] = {};
    for (const [id, s] of this.perSession) {
      for (const dir of ['client->agent', 'agent->client'] as const) {
        for (const k of Object.keys(totals[dir]) as (keyof FaultCounters)[]) totals[dir][k] += s[dir][k];
      }
      sessions[id] = {
        'client->agent': { ...s['client->agent'] },
        'agent->client': { ...s['agent->client'] },
      };
    }
    return { ...totals, sessions };
  }

  /** Cancels pending delayed and held frames (they are discarded). */
  dispose(): void {
    for (const stage of this.stages) stage.dispose();
  }
}
