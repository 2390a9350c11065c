/**
 * Key positions. TOML values carry no positions, so the text is scanned again to learn on which line
 * each table and key first appears. The scanner is tolerant: on anything unexpected it stops and keeps
 * what it found, and lookups fall back to the closest enclosing table.
 */

export class PositionScanner {
  private i = 0;
  private line = 1;
  private readonly first = new Map<string, number>();
  private readonly statements: { line: number; path: string[] }[] = [];

  constructor(private readonly s: string) {}

  scan(): this {
    try {
      this.document();
    } catch {
      // Partial positions are still better than none.
    }
    return this;
  }

  /** Line of the closest recorded ancestor of `path` (or of `path` itself); 1 when nothing matched. */
  lineOf(p: readonly string[]): number {
    for (let n = p.length; n > 0; n--) {
      const line = this.first.get(p.slice(0, n).join('\0'));
      if (line !== undefined) return line;
    }
    return 1;
  }

  /** For a redefinition on `line`: the earlier line where the same table or key was first written. */
  firstDefinition(line: number): number | undefined {
    for (const st of this.statements) {
      if (st.line !== line) continue;
      const first = this.first.get(st.path.join('\0'));
      if (first !== undefined && first < line) return first;
    }
    return undefined;
  }

  private record(p: string[], line: number, statement: boolean): void {
    for (let n = 1; n <= p.length; n++) {
      const id = p.slice(0, n).join('\0');
      if (!this.first.has(id)) this.first.set(id, line);
    }
    if (statement) this.statements.push({ line, path: p });
  }

  private document(): void {
    let table: string[] = [];
    while (this.i < this.s.length) {
      this.skipBlank();
      if (this.i >= this.s.length) break;
      const line = this.line;
      if (this.s[this.i] === '[') {
        this.i += this.s[this.i + 1] === '[' ? 2 : 1;
        table = this.key();
        // `[a]` after `a = 1` is a syntax error; record anyway so firstDefinition can find the pair.
        this.statements.push({ line, path: table });
        this.record(table, line, false);
      } else {
        const k = this.key();
        this.skipWs();
        if (k.length > 0 && this.s[this.i] === '=') {
          this.i++;
          this.skipWs();
          const full = [...table, ...k];
          this.statements.push({ line, path: full });
          this.record(full, line, false);
          this.value(full);
        }
      }
      this.skipLine();
    }
  }

  private value(p: string[]): void {
    const s = this.s;
    const start = this.i;
    if (s.startsWith('"""', this.i) || s.startsWith("'''", this.i)) {
      const quote = s.slice(this.i, this.i + 3);
      this.i += 3;
      while (this.i < s.length && !s.startsWith(quote, this.i)) {
        if (quote === '"""' && s[this.i] === '\\') this.i++;
        if (s[this.i] === '\n') this.line++;
        this.i++;
      }
      this.i += 3;
      // Up to two quotes directly before the closing delimiter belong to the content.
      while (s[this.i] === quote[0]) this.i++;
    } else if (s[this.i] === '"' || s[this.i] === "'") {
      this.quoted();
    } else if (s[this.i] === '[') {
      this.i++;
      for (let n = 0; ; n++) {
        this.skipBlank();
        if (this.i >= s.length || s[this.i] === ']') break;
        this.record([...p, String(n)], this.line, false);
        this.value([...p, String(n)]);
        this.skipBlank();
        if (s[this.i] === ',') this.i++;
      }
      this.i++;
    } else if (s[this.i] === '{') {
      this.i++;
      for (;;) {
        this.skipBlank();
        if (this.i >= s.length || s[this.i] === '}') break;
        if (s[this.i] === ',') {
          this.i++;
          continue;
        }
        const line = this.line;
        const k = this.key();
        this.skipWs();
        if (k.length === 0 || s[this.i] !== '=') throw new Error('unexpected inline table content');
        this.i++;
        this.skipWs();
        const full = [...p, ...k];
        this.record(full, line, false);
        this.value(full);
      }
      this.i++;
    } else {
      while (this.i < s.length && !',]}#\r\n'.includes(s[this.i])) this.i++;
    }
    if (this.i === start) throw new Error('no progress');
  }

  private key(): string[] {
    const parts: string[] = [];
    const bare = /[A-Za-z0-9_-]+/y;
    for (;;) {
      this.skipWs();
      const c = this.s[this.i];
      if (c === '"' || c === "'") {
        parts.push(this.quoted());
      } else {
        bare.lastIndex = this.i;
        const m = bare.exec(this.s);
        if (!m) break;
        parts.push(m[0]);
        this.i += m[0].length;
      }
      this.skipWs();
      if (this.s[this.i] !== '.') break;
      this.i++;
    }
    return parts;
  }

  /** A single-line basic or literal string starting at the current quote; returns its decoded text. */
  private quoted(): string {
    const s = this.s;
    const quote = s[this.i++];
    let out = '';
    while (this.i < s.length && s[this.i] !== quote && s[this.i] !== '\n') {
      if (quote === '"' && s[this.i] === '\\') {
        const e = s[this.i + 1];
        const hex = e === 'u' ? 4 : e === 'U' ? 8 : e === 'x' ? 2 : 0;
        if (hex > 0) {
          out += String.fromCodePoint(Number.parseInt(s.slice(this.i + 2, this.i + 2 + hex), 16) || 0xfffd);
          this.i += 2 + hex;
        } else {
          const simple: Record<string, string> = { b: '\b', t: '\t', n: '\n', f: '\f', r: '\r', e: '\x1b' };
          out += simple[e] ?? e;
          this.i += 2;
        }
      } else {
        out += s[this.i++];
      }
    }
    if (s[this.i] === quote) this.i++;
    return out;
  }

  private skipWs(): void {
    while (this.s[this.i] === ' ' || this.s[this.i] === '\t') this.i++;
  }

  /** Whitespace, newlines and comments: the filler allowed between statements and between array items. */
  private skipBlank(): void {
    for (;;) {
      const c = this.s[this.i];
      if (c === ' ' || c === '\t' || c === '\r') this.i++;
      else if (c === '\n') {
        this.line++;
        this.i++;
      } else if (c === '#') {
        while (this.i < this.s.length && this.s[this.i] !== '\n') this.i++;
      } else return;
    }
  }

  private skipLine(): void {
    while (this.i < this.s.length && this.s[this.i] !== '\n') this.i++;
    if (this.i < this.s.length) {
      this.i++;
      this.line++;
    }
  }
}
