/** The bench's --sessions flag: the pool sizes the wan part compares. */
import { describe, expect, it } from 'vitest';
import { parseOptions } from '../../bench/options.js';

describe('bench --sessions', () => {
  it('defaults to 1,4 and keeps the order given, without repeats', () => {
    expect(parseOptions([]).sessions).toEqual([1, 4]);
    expect(parseOptions(['--sessions', '4, 1,4,16']).sessions).toEqual([4, 1, 16]);
  });

  it('refuses sizes outside 1..16 with an example', () => {
    for (const bad of ['0', '17', '1.5', 'four', '1,,4']) {
      expect(() => parseOptions(['--sessions', bad])).toThrow(
        /--sessions: .* is not a pool size 1\.\.16 \(e\.g\. --sessions 1,4\)/,
      );
    }
  });

  it('knows the wan part', () => {
    expect([...parseOptions(['--only', 'wan']).parts]).toEqual(['wan']);
  });
});
