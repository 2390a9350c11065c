/** `sessions = N`: how many SSM sessions a tunnel may spread its connections over. */
import type { Section } from './section.js';

/** Each session is one agent session worker on the bastion; 16 is plenty for ~16 MB/s. */
export const MAX_SESSIONS = 16;

export function checkSessions(s: Section): number | undefined {
  const v = s.get('sessions');
  if (v === undefined) return 1;
  const n = typeof v === 'bigint' ? Number(v) : v;
  if (typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= MAX_SESSIONS) return n;
  s.report(
    'sessions',
    `sessions in ${s.where} must be a whole number from 1 to ${MAX_SESSIONS}, not ${JSON.stringify(typeof v === 'bigint' ? Number(v) : v)}`,
    `Write e.g. ${s.ex('sessions', 4)} (each session is one agent session worker on the bastion).`,
  );
  return undefined;
}
