/**
 * SPEC 12.6: what a well-behaved client puts on the wire, checked on every InputStreamData and
 * Acknowledge the agent receives. Failures are recorded as violations (SimAgentStats.violations);
 * the agent still acts on the message as the real one would.
 */

import {
  type DecodedMessage,
  HEADER_LENGTH,
  HeaderFlags,
  MessageType,
  PayloadType,
} from '../../protocol/message.js';

const CANONICAL_ACK =
  /^\{"AcknowledgedMessageType":"output_stream_data","AcknowledgedMessageId":"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}","AcknowledgedMessageSequenceNumber":\d{1,16},"IsSequentialMessage":true\}$/;
const ACK_KEYS =
  'AcknowledgedMessageId,AcknowledgedMessageSequenceNumber,AcknowledgedMessageType,IsSequentialMessage';

export function checkClientMessage(m: DecodedMessage, violation: (text: string) => void): void {
  const type = m.messageType;
  if (type !== MessageType.InputStreamData && type !== MessageType.Acknowledge) return;
  const what = `${type} seq ${m.sequenceNumber}`;
  if (m.headerLength !== HEADER_LENGTH) violation(`${what}: HeaderLength ${m.headerLength}, expected 116`);
  if (m.declaredPayloadLength !== m.payload.length) {
    violation(`${what}: PayloadLength ${m.declaredPayloadLength} but ${m.payload.length} bytes follow`);
  }
  if (type === MessageType.InputStreamData) {
    if (m.flags !== HeaderFlags.Data) violation(`${what}: flags ${m.flags}, expected 0`);
    if (m.payload.length === 0) violation(`${what}: empty payload`);
    return;
  }
  if (m.flags !== HeaderFlags.Ack) violation(`${what}: flags ${m.flags}, expected 3`);
  if (m.payloadType !== PayloadType.None) violation(`${what}: payload type ${m.payloadType}, expected 0`);
  if (m.sequenceNumber !== 0) violation(`${what}: acknowledge with a non-zero sequence number`);
  // The exact form upstream emits passes every check below; only anything else needs the full parse.
  if (CANONICAL_ACK.test(m.payload.toString('latin1'))) return;
  let body: unknown;
  try {
    body = JSON.parse(m.payload.toString('utf8'));
  } catch {
    violation(`${what}: acknowledge payload is not JSON`);
    return;
  }
  const o = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const keys = Object.keys(o).sort().join(',');
  if (keys !== ACK_KEYS) violation(`${what}: acknowledge keys ${keys}`);
  if (o.AcknowledgedMessageType !== MessageType.OutputStreamData) {
    violation(`${what}: AcknowledgedMessageType ${JSON.stringify(o.AcknowledgedMessageType)}`);
  }
  if (typeof o.AcknowledgedMessageSequenceNumber !== 'number') {
    violation(`${what}: AcknowledgedMessageSequenceNumber is not a number`);
  }
  if (typeof o.AcknowledgedMessageId !== 'string')
    violation(`${what}: AcknowledgedMessageId is not a string`);
  if (o.IsSequentialMessage !== true) violation(`${what}: IsSequentialMessage is not true`);
}
