/**
 * JSON payloads carried inside client messages (SPEC 5.1, 5.2, 8). Parsers validate shape and return
 * `undefined` (never throw) for anything a peer could send wrong; builders produce upstream's key order.
 */
import { MessageType } from './message.js';

export interface AcknowledgeContent {
  AcknowledgedMessageType: string;
  AcknowledgedMessageId: string;
  AcknowledgedMessageSequenceNumber: number;
  IsSequentialMessage: boolean;
}

export interface ChannelClosed {
  MessageId?: string;
  CreatedDate?: string;
  DestinationId?: string;
  SessionId?: string;
  MessageType?: string;
  SchemaVersion?: number;
  Output?: string;
}

export interface SessionTypeAction {
  ActionType: 'SessionType';
  ActionParameters: { SessionType: string; Properties?: unknown };
}

export interface RequestedClientAction {
  ActionType: string;
  ActionParameters?: unknown;
}

export interface HandshakeRequest {
  AgentVersion: string;
  RequestedClientActions: RequestedClientAction[];
}

export const ActionStatus = { Success: 1, Failed: 2, Unsupported: 3 } as const;

export interface ProcessedClientAction {
  ActionType: string;
  ActionStatus: number;
  ActionResult: unknown;
  Error: string;
}

export interface HandshakeResponse {
  ClientVersion: string;
  ProcessedClientActions: ProcessedClientAction[];
  Errors: string[] | null;
}

export interface HandshakeComplete {
  HandshakeTimeToComplete: number;
  CustomerMessage: string;
}

/** Port-session properties delivered in the SessionType action (SPEC 2.2); all values are strings. */
export interface PortProperties {
  portNumber?: string;
  localPortNumber?: string;
  host?: string;
  type?: string;
  [key: string]: unknown;
}

function parseObject(payload: Uint8Array): Record<string, unknown> | undefined {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.length).toString('utf8'));
  } catch {
    return undefined;
  }
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

/**
 * Built by hand rather than with JSON.stringify: acks are one per message on the hot path, and the
 * fixed key order is exactly what both upstream sides emit (SPEC 4.7 example A).
 */
export function buildAcknowledge(messageType: string, messageId: string, sequenceNumber: number): Buffer {
  return Buffer.from(
    `{"AcknowledgedMessageType":"${messageType}","AcknowledgedMessageId":"${messageId}","AcknowledgedMessageSequenceNumber":${sequenceNumber},"IsSequentialMessage":true}`,
    'latin1',
  );
}

const ACK_SEQ_KEY = Buffer.from('"AcknowledgedMessageSequenceNumber":');

/**
 * The acked sequence number without a JSON parse: one ack arrives per message sent, so this is on the
 * hot path. Falls back to a full parse for anything but the plain form both upstream sides emit.
 */
export function parseAckSequence(payload: Buffer): number | undefined {
  const at = payload.indexOf(ACK_SEQ_KEY);
  if (at >= 0) {
    let i = at + ACK_SEQ_KEY.length;
    let n = 0;
    const start = i;
    while (i < payload.length && i - start < 16) {
      const c = payload[i];
      if (c < 0x30 || c > 0x39) break;
      n = n * 10 + (c - 0x30);
      i++;
    }
    const end = payload[i];
    // Followed by ',' or '}': a complete integer (not a float or exponent form).
    if (i > start && (end === 0x2c || end === 0x7d) && payload[payload.length - 1] === 0x7d) return n;
  }
  return parseAcknowledge(payload)?.AcknowledgedMessageSequenceNumber;
}

/** Receivers match acks by sequence number only (SPEC 5.1), so that is all we insist on. */
export function parseAcknowledge(payload: Uint8Array): AcknowledgeContent | undefined {
  const o = parseObject(payload);
  if (!o) return undefined;
  const seq = o.AcknowledgedMessageSequenceNumber;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) return undefined;
  return {
    AcknowledgedMessageType: typeof o.AcknowledgedMessageType === 'string' ? o.AcknowledgedMessageType : '',
    AcknowledgedMessageId: typeof o.AcknowledgedMessageId === 'string' ? o.AcknowledgedMessageId : '',
    AcknowledgedMessageSequenceNumber: seq,
    IsSequentialMessage: o.IsSequentialMessage !== false,
  };
}

/** A parse failure is treated as an empty ChannelClosed, as the plugin does (SPEC 5.2). */
export function parseChannelClosed(payload: Uint8Array): ChannelClosed {
  const o = parseObject(payload) ?? {};
  const str = (k: string) => (typeof o[k] === 'string' ? (o[k] as string) : undefined);
  return {
    MessageId: str('MessageId'),
    CreatedDate:
      str('CreatedDate') ?? (typeof o.CreatedDate === 'number' ? String(o.CreatedDate) : undefined),
    DestinationId: str('DestinationId'),
    SessionId: str('SessionId'),
    MessageType: str('MessageType'),
    SchemaVersion: typeof o.SchemaVersion === 'number' ? o.SchemaVersion : undefined,
    Output: str('Output'),
  };
}

export function buildChannelClosed(c: {
  messageId: string;
  createdDate: string;
  destinationId: string;
  sessionId: string;
  output: string;
}): Buffer {
  return Buffer.from(
    JSON.stringify({
      MessageId: c.messageId,
      CreatedDate: c.createdDate,
      DestinationId: c.destinationId,
      SessionId: c.sessionId,
      MessageType: MessageType.ChannelClosed,
      SchemaVersion: 1,
      Output: c.output,
    }),
  );
}

export function parseHandshakeRequest(payload: Uint8Array): HandshakeRequest | undefined {
  const o = parseObject(payload);
  if (!o || typeof o.AgentVersion !== 'string' || !Array.isArray(o.RequestedClientActions)) return undefined;
  const actions: RequestedClientAction[] = [];
  for (const a of o.RequestedClientActions) {
    if (
      typeof a !== 'object' ||
      a === null ||
      typeof (a as { ActionType?: unknown }).ActionType !== 'string'
    ) {
      return undefined;
    }
    actions.push(a as RequestedClientAction);
  }
  return { AgentVersion: o.AgentVersion, RequestedClientActions: actions };
}

export function buildHandshakeRequest(req: HandshakeRequest): Buffer {
  return Buffer.from(JSON.stringify(req));
}

export function buildHandshakeResponse(res: HandshakeResponse): Buffer {
  return Buffer.from(JSON.stringify(res));
}

export function parseHandshakeResponse(payload: Uint8Array): HandshakeResponse | undefined {
  const o = parseObject(payload);
  if (!o || typeof o.ClientVersion !== 'string' || !Array.isArray(o.ProcessedClientActions)) return undefined;
  const processed: ProcessedClientAction[] = [];
  for (const a of o.ProcessedClientActions) {
    if (typeof a !== 'object' || a === null) return undefined;
    const r = a as Record<string, unknown>;
    if (typeof r.ActionType !== 'string' || typeof r.ActionStatus !== 'number') return undefined;
    processed.push({
      ActionType: r.ActionType,
      ActionStatus: r.ActionStatus,
      ActionResult: r.ActionResult ?? null,
      Error: typeof r.Error === 'string' ? r.Error : '',
    });
  }
  const errors = Array.isArray(o.Errors) ? o.Errors.filter((e): e is string => typeof e === 'string') : null;
  return { ClientVersion: o.ClientVersion, ProcessedClientActions: processed, Errors: errors };
}

export function buildHandshakeComplete(c: HandshakeComplete): Buffer {
  return Buffer.from(JSON.stringify(c));
}

export function parseHandshakeComplete(payload: Uint8Array): HandshakeComplete | undefined {
  const o = parseObject(payload);
  if (!o) return undefined;
  return {
    HandshakeTimeToComplete: typeof o.HandshakeTimeToComplete === 'number' ? o.HandshakeTimeToComplete : 0,
    CustomerMessage: typeof o.CustomerMessage === 'string' ? o.CustomerMessage : '',
  };
}

/** The SessionType action's Properties as port properties, or undefined if not an object. */
export function portProperties(action: RequestedClientAction): PortProperties | undefined {
  const params = action.ActionParameters as { Properties?: unknown } | undefined;
  const p = params?.Properties;
  return typeof p === 'object' && p !== null && !Array.isArray(p) ? (p as PortProperties) : undefined;
}

export interface OpenDataChannelInput {
  MessageSchemaVersion: '1.0';
  RequestId: string;
  TokenValue: string;
  ClientId: string;
  ClientVersion?: string;
  ClientInstanceId?: string;
}

export function buildOpenDataChannel(o: OpenDataChannelInput): string {
  return JSON.stringify(o);
}

export function parseOpenDataChannel(text: string): OpenDataChannelInput | undefined {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof o !== 'object' || o === null) return undefined;
  const r = o as Record<string, unknown>;
  if (
    r.MessageSchemaVersion !== '1.0' ||
    typeof r.RequestId !== 'string' ||
    typeof r.TokenValue !== 'string'
  ) {
    return undefined;
  }
  if (typeof r.ClientId !== 'string' && typeof r.ClientInstanceId !== 'string') return undefined;
  return {
    MessageSchemaVersion: '1.0',
    RequestId: r.RequestId,
    TokenValue: r.TokenValue,
    ClientId: typeof r.ClientId === 'string' ? r.ClientId : '',
    ClientVersion: typeof r.ClientVersion === 'string' ? r.ClientVersion : undefined,
    ClientInstanceId: typeof r.ClientInstanceId === 'string' ? r.ClientInstanceId : undefined,
  };
}
