/**
 * Peeks at a binary client message's raw header (SPEC 4.1) without decoding it: the relay's hot path
 * and the fault injector only need the MessageType and SequenceNumber fields.
 */

// Raw header offsets (SPEC 4.1): reading these directly keeps the relay's hot path free of full decodes.
const TYPE_OFFSET = 4;
const TYPE_SIZE = 32;
const SEQUENCE_OFFSET = 48;
const MIN_FRAME = 120;

const INPUT_STREAM_DATA = Buffer.from('input_stream_data', 'latin1');
const OUTPUT_STREAM_DATA = Buffer.from('output_stream_data', 'latin1');

/**
 * True when the frame's MessageType field is exactly `name` (space- or NUL-padded), comparing raw
 * bytes so the hot path neither allocates nor decodes.
 */
export function frameTypeIs(frame: Buffer, name: Buffer): boolean {
  if (frame.length < TYPE_OFFSET + TYPE_SIZE || name.length > TYPE_SIZE) return false;
  if (frame.compare(name, 0, name.length, TYPE_OFFSET, TYPE_OFFSET + name.length) !== 0) return false;
  for (let i = TYPE_OFFSET + name.length; i < TYPE_OFFSET + TYPE_SIZE; i++) {
    const b = frame[i];
    if (b !== 0x20 && b !== 0) return false;
  }
  return true;
}

/** input_stream_data or output_stream_data: what counts as activity and carries a stream sequence. */
export function isStreamData(frame: Buffer): boolean {
  if (frame.length < MIN_FRAME) return false;
  // The first byte tells the two apart without comparing both names.
  const first = frame[TYPE_OFFSET];
  if (first === 0x69 /* i */) return frameTypeIs(frame, INPUT_STREAM_DATA);
  if (first === 0x6f /* o */) return frameTypeIs(frame, OUTPUT_STREAM_DATA);
  return false;
}

/** The SequenceNumber field, or undefined if the frame is too short to hold one. */
export function frameSequence(frame: Buffer): number | undefined {
  if (frame.length < MIN_FRAME) return undefined;
  return Number(frame.readBigInt64BE(SEQUENCE_OFFSET));
}
