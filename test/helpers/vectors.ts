import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface VectorFrame {
  index: number;
  direction: string;
  ws: string;
  relay?: string;
  resend?: boolean;
  hex: string;
  text?: string;
  messageType?: string;
  sequenceNumber?: number;
  flags?: number;
  payloadType?: number;
  payloadTypeName?: string | null;
  payloadLength?: number;
  messageId?: string;
  createdDate?: number;
  payloadText?: string;
  flag?: string;
}

export interface VectorFile {
  scenario: string;
  file: string;
  frames: VectorFrame[];
}

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');

export function loadVectors(): VectorFile[] {
  return readdirSync(FIXTURES)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => ({ ...JSON.parse(readFileSync(join(FIXTURES, f), 'utf8')), file: f }));
}

/** Binary client-message frames (not OpenDataChannel text or WebSocket pings). */
export function binaryFrames(v: VectorFile): VectorFrame[] {
  return v.frames.filter((f) => f.ws === 'binary' && f.messageType !== undefined);
}
