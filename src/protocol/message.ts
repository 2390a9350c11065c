/**
 * The Session Manager "client message" (SPEC section 4): a 116-byte header prefix, a 4-byte payload
 * length, then the payload. Big-endian integers, space-padded message type, MessageId written with its
 * two 8-byte halves swapped, SHA-256 digest of the payload bytes as transmitted.
 */
import { hash, randomFillSync, randomUUID } from 'node:crypto';
import { ProtocolError } from './errors.js';

export const HEADER_LENGTH = 116;
export const PAYLOAD_OFFSET = 120;
const MESSAGE_TYPE_OFFSET = 4;
const MESSAGE_TYPE_SIZE = 32;
const SCHEMA_VERSION_OFFSET = 36;
const CREATED_DATE_OFFSET = 40;
const SEQUENCE_NUMBER_OFFSET = 48;
const FLAGS_OFFSET = 56;
const MESSAGE_ID_OFFSET = 64;
const DIGEST_OFFSET = 80;
const DIGEST_SIZE = 32;
const PAYLOAD_TYPE_OFFSET = 112;
const PAYLOAD_LENGTH_OFFSET = 116;

export const MessageType = {
  InputStreamData: 'input_stream_data',
  OutputStreamData: 'output_stream_data',
  Acknowledge: 'acknowledge',
  ChannelClosed: 'channel_closed',
  StartPublication: 'start_publication',
  PausePublication: 'pause_publication',
  AgentSessionState: 'agent_session_state',
  DataChannelReady: 'data_channel_ready',
} as const;

export const PayloadType = {
  None: 0,
  Output: 1,
  Error: 2,
  Size: 3,
  Parameter: 4,
  HandshakeRequest: 5,
  HandshakeResponse: 6,
  HandshakeComplete: 7,
  EncChallengeRequest: 8,
  EncChallengeResponse: 9,
  Flag: 10,
  StdErr: 11,
  ExitCode: 12,
} as const;

export const PayloadFlag = {
  DisconnectToPort: 1,
  TerminateSession: 2,
  ConnectToPortError: 3,
} as const;

/** Header Flags values upstream writes (SPEC 4.4); no receiver reads them. */
export const HeaderFlags = { Data: 0, Syn: 1, Ack: 3 } as const;

export interface ClientMessage {
  messageType: string;
  schemaVersion: number;
  /** Milliseconds since the Unix epoch. */
  createdDate: number;
  sequenceNumber: number;
  flags: number;
  /** Canonical (un-swapped) lowercase UUID string. */
  messageId: string;
  payloadType: number;
  payload: Buffer;
}

export interface DecodedMessage extends ClientMessage {
  headerLength: number;
  /** The PayloadLength field as written, which upstream parsers never use to slice. */
  declaredPayloadLength: number;
  payloadDigest: Buffer;
}

export interface DecodeOptions {
  /** Reject frames whose PayloadLength field disagrees with the bytes present (test/strict mode). */
  strictLength?: boolean;
}

export type DecodeResult = { ok: true; message: DecodedMessage } | { ok: false; error: ProtocolError };

export function sha256(data: Uint8Array): Buffer {
  return hash('sha256', data, 'buffer') as unknown as Buffer;
}

export function newMessageId(): string {
  return randomUUID();
}

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Reads 16 bytes written half-swapped (SPEC 4.2) back into the canonical UUID string. */
function readMessageId(buf: Uint8Array, off: number): string {
  // Canonical U[0..7] sits at off+8, U[8..15] at off.
  const h = (i: number) => HEX[buf[i]];
  const a = off + 8;
  const b = off;
  return (
    h(a) +
    h(a + 1) +
    h(a + 2) +
    h(a + 3) +
    '-' +
    h(a + 4) +
    h(a + 5) +
    '-' +
    h(a + 6) +
    h(a + 7) +
    '-' +
    h(b) +
    h(b + 1) +
    '-' +
    h(b + 2) +
    h(b + 3) +
    h(b + 4) +
    h(b + 5) +
    h(b + 6) +
    h(b + 7)
  );
}

const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

function writeMessageId(buf: Buffer, off: number, id: string): void {
  if (!UUID_RE.test(id)) throw new ProtocolError('BAD_MESSAGE_ID', `not a UUID: ${JSON.stringify(id)}`);
  const hex = id.replace(/-/g, '');
  // Second half first (SPEC 4.2).
  buf.write(hex.slice(16), off, 8, 'hex');
  buf.write(hex.slice(0, 16), off + 8, 8, 'hex');
}

// Random message ids come from a pool refilled in bulk: one randomUUID() per message costs more than
// the rest of the header.
const ID_POOL = Buffer.allocUnsafe(16 * 1024);
let idPoolOffset = ID_POOL.length;

function writeRandomMessageId(buf: Buffer, off: number): void {
  if (idPoolOffset + 16 > ID_POOL.length) {
    randomFillSync(ID_POOL);
    idPoolOffset = 0;
  }
  const p = idPoolOffset;
  idPoolOffset += 16;
  // Canonical U[0..7] goes second, U[8..15] first (SPEC 4.2); set the v4 version and variant bits.
  ID_POOL.copy(buf, off, p + 8, p + 16);
  ID_POOL.copy(buf, off + 8, p, p + 8);
  buf[off + 8 + 6] = (buf[off + 8 + 6] & 0x0f) | 0x40;
  buf[off] = (buf[off] & 0x3f) | 0x80;
}

const TWO_32 = 2 ** 32;

/** 64-bit fields as two 32-bit halves: BigInt conversions are slow on the per-message path. */
function writeU64(buf: Buffer, value: number, off: number): void {
  buf.writeUInt32BE(Math.floor(value / TWO_32) >>> 0, off);
  buf.writeUInt32BE(value >>> 0, off + 4);
}

function readU64(buf: Buffer, off: number): number {
  return buf.readUInt32BE(off) * TWO_32 + buf.readUInt32BE(off + 4);
}

/** Signed: sequence numbers are int64 on the wire; negative values only come from garbage. */
function readI64(buf: Buffer, off: number): number {
  return buf.readInt32BE(off) * TWO_32 + buf.readUInt32BE(off + 4);
}

export interface EncodeInput {
  messageType: string;
  sequenceNumber: number;
  flags: number;
  payloadType: number;
  payload: Uint8Array;
  messageId?: string;
  createdDate?: number;
  schemaVersion?: number;
  headerLength?: number;
}

/** Serialises one client message exactly as upstream does (byte-identical for the same inputs). */
export function encodeMessage(m: EncodeInput): Buffer {
  const payloadLen = m.payload.length;
  const headerLength = m.headerLength ?? HEADER_LENGTH;
  const buf = Buffer.allocUnsafe(headerLength + 4 + payloadLen);
  buf.writeUInt32BE(headerLength, 0);
  const typeLen = buf.write(m.messageType, MESSAGE_TYPE_OFFSET, MESSAGE_TYPE_SIZE, 'latin1');
  buf.fill(0x20, MESSAGE_TYPE_OFFSET + typeLen, MESSAGE_TYPE_OFFSET + MESSAGE_TYPE_SIZE);
  buf.writeUInt32BE(m.schemaVersion ?? 1, SCHEMA_VERSION_OFFSET);
  writeU64(buf, m.createdDate ?? Date.now(), CREATED_DATE_OFFSET);
  if (m.sequenceNumber < 0) buf.writeBigInt64BE(BigInt(m.sequenceNumber), SEQUENCE_NUMBER_OFFSET);
  else writeU64(buf, m.sequenceNumber, SEQUENCE_NUMBER_OFFSET);
  writeU64(buf, m.flags, FLAGS_OFFSET);
  if (m.messageId === undefined) writeRandomMessageId(buf, MESSAGE_ID_OFFSET);
  else writeMessageId(buf, MESSAGE_ID_OFFSET, m.messageId);
  sha256(m.payload).copy(buf, DIGEST_OFFSET);
  buf.writeUInt32BE(m.payloadType, PAYLOAD_TYPE_OFFSET);
  if (headerLength > HEADER_LENGTH) buf.fill(0, PAYLOAD_LENGTH_OFFSET, headerLength);
  buf.writeUInt32BE(payloadLen, headerLength);
  buf.set(m.payload, headerLength + 4);
  return buf;
}

function fail(code: ConstructorParameters<typeof ProtocolError>[0], message: string): DecodeResult {
  return { ok: false, error: new ProtocolError(code, message) };
}

function isPublication(type: string): boolean {
  return type === MessageType.StartPublication || type === MessageType.PausePublication;
}

function readMessageType(frame: Uint8Array): string {
  let start = MESSAGE_TYPE_OFFSET;
  let end = MESSAGE_TYPE_OFFSET + MESSAGE_TYPE_SIZE;
  // Upstream strips NULs and whitespace at both ends.
  while (start < end && (frame[start] === 0x20 || frame[start] === 0)) start++;
  while (end > start && (frame[end - 1] === 0x20 || frame[end - 1] === 0)) end--;
  return Buffer.from(frame.buffer, frame.byteOffset + start, end - start).toString('latin1');
}

/**
 * Parses untrusted bytes. Never throws: a malformed frame yields `{ ok: false, error }` with a typed
 * code; the caller decides whether to drop it (upstream does) or count it.
 */
export function decodeMessage(input: Uint8Array, opts: DecodeOptions = {}): DecodeResult {
  const frame = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.length);
  if (frame.length < PAYLOAD_OFFSET) {
    return fail('FRAME_TRUNCATED', `frame of ${frame.length} bytes is shorter than the 120-byte header`);
  }
  const headerLength = frame.readUInt32BE(0);
  const messageType = readMessageType(frame);
  const publication = isPublication(messageType);
  if (!publication) {
    if (headerLength === 0) return fail('BAD_HEADER_LENGTH', 'HeaderLength is 0');
    if (messageType === '') return fail('EMPTY_MESSAGE_TYPE', 'MessageType is empty');
  }
  // Fixed fields sit at fixed offsets, so a HeaderLength below 116 or past the end cannot be sliced.
  if (headerLength < HEADER_LENGTH || headerLength + 4 > frame.length) {
    if (publication) {
      return { ok: true, message: publicationMessage(frame, messageType, headerLength) };
    }
    return fail(
      'BAD_HEADER_LENGTH',
      `HeaderLength ${headerLength} does not fit a ${frame.length}-byte frame`,
    );
  }
  const createdDate = readU64(frame, CREATED_DATE_OFFSET);
  if (createdDate === 0 && !publication) return fail('ZERO_CREATED_DATE', 'CreatedDate is 0');
  const declaredPayloadLength = frame.readUInt32BE(headerLength);
  const payload = frame.subarray(headerLength + 4);
  if (declaredPayloadLength !== payload.length && opts.strictLength && !publication) {
    return fail(
      'PAYLOAD_LENGTH_MISMATCH',
      `PayloadLength says ${declaredPayloadLength} bytes but ${payload.length} follow the header`,
    );
  }
  const payloadDigest = frame.subarray(DIGEST_OFFSET, DIGEST_OFFSET + DIGEST_SIZE);
  if (!publication && payload.length > 0 && !sha256(payload).equals(payloadDigest)) {
    return fail('DIGEST_MISMATCH', `payload digest mismatch on ${messageType}`);
  }
  return {
    ok: true,
    message: {
      headerLength,
      messageType,
      schemaVersion: frame.readUInt32BE(SCHEMA_VERSION_OFFSET),
      createdDate,
      sequenceNumber: readI64(frame, SEQUENCE_NUMBER_OFFSET),
      flags: readU64(frame, FLAGS_OFFSET),
      messageId: readMessageId(frame, MESSAGE_ID_OFFSET),
      payloadDigest,
      payloadType: frame.readUInt32BE(PAYLOAD_TYPE_OFFSET),
      declaredPayloadLength,
      payload,
    },
  };
}

/** start_/pause_publication skip validation upstream (SPEC 4.6, trap 17); keep whatever can be read. */
function publicationMessage(frame: Buffer, messageType: string, headerLength: number): DecodedMessage {
  return {
    headerLength,
    messageType,
    schemaVersion: frame.readUInt32BE(SCHEMA_VERSION_OFFSET),
    createdDate: readU64(frame, CREATED_DATE_OFFSET),
    sequenceNumber: readI64(frame, SEQUENCE_NUMBER_OFFSET),
    flags: readU64(frame, FLAGS_OFFSET),
    messageId: readMessageId(frame, MESSAGE_ID_OFFSET),
    payloadDigest: frame.subarray(DIGEST_OFFSET, DIGEST_OFFSET + DIGEST_SIZE),
    payloadType: frame.readUInt32BE(PAYLOAD_TYPE_OFFSET),
    declaredPayloadLength: 0,
    payload: Buffer.alloc(0),
  };
}

/** A 4-byte big-endian Flag payload (SPEC 6, trap 18). */
export function encodeFlag(flag: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(flag, 0);
  return b;
}

export function decodeFlag(payload: Uint8Array): number | undefined {
  if (payload.length !== 4) return undefined;
  return ((payload[0] << 24) | (payload[1] << 16) | (payload[2] << 8) | payload[3]) >>> 0;
}
