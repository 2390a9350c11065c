/**
 * A strict reader for XML property lists (the subset launchd uses: dict, array, key, string, integer,
 * real, true, false), for machines without `plutil`. Anything it does not know is an error, never
 * skipped: unknown tags, text between elements, unbalanced tags, a dict whose entries are not
 * key/value pairs, duplicate keys, unknown entities.
 */
export type PlistValue = string | number | boolean | PlistValue[] | { [key: string]: PlistValue };

interface Token {
  kind: 'open' | 'close' | 'empty' | 'text';
  name: string;
  text: string;
  at: number;
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function decode(text: string, at: number): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);|&/g, (m, ent: string | undefined) => {
    if (!ent) throw new Error(`bare & at ${at}`);
    if (ent.startsWith('#x')) return String.fromCodePoint(Number.parseInt(ent.slice(2), 16));
    if (ent.startsWith('#')) return String.fromCodePoint(Number(ent.slice(1)));
    const v = ENTITIES[ent];
    if (v === undefined) throw new Error(`unknown entity ${m} at ${at}`);
    return v;
  });
}

function tokenize(xml: string): Token[] {
  let i = 0;
  if (!xml.startsWith('<?xml ')) throw new Error('missing <?xml ...?> declaration');
  const tokens: Token[] = [];
  while (i < xml.length) {
    if (xml.startsWith('<?', i)) {
      const end = xml.indexOf('?>', i);
      if (end < 0) throw new Error(`unterminated <? at ${i}`);
      i = end + 2;
    } else if (xml.startsWith('<!--', i)) {
      const end = xml.indexOf('-->', i + 4);
      if (end < 0) throw new Error(`unterminated comment at ${i}`);
      if (xml.slice(i + 4, end).includes('--')) throw new Error(`"--" inside a comment at ${i}`);
      i = end + 3;
    } else if (xml.startsWith('<!DOCTYPE', i)) {
      const end = xml.indexOf('>', i);
      if (end < 0) throw new Error(`unterminated DOCTYPE at ${i}`);
      i = end + 1;
    } else if (xml[i] === '<') {
      const end = xml.indexOf('>', i);
      if (end < 0) throw new Error(`unterminated tag at ${i}`);
      const body = xml.slice(i + 1, end);
      const m = /^(\/?)([A-Za-z]+)((?:\s+[a-z]+="[^"<&]*")*)\s*(\/?)$/.exec(body);
      if (!m) throw new Error(`malformed tag <${body}> at ${i}`);
      const [, slash, name, attrs, selfClose] = m;
      if (attrs && name !== 'plist') throw new Error(`unexpected attributes on <${name}> at ${i}`);
      tokens.push({ kind: slash ? 'close' : selfClose ? 'empty' : 'open', name, text: '', at: i });
      i = end + 1;
    } else {
      const end = xml.indexOf('<', i);
      const text = xml.slice(i, end < 0 ? xml.length : end);
      tokens.push({ kind: 'text', name: '', text: decode(text, i), at: i });
      i = end < 0 ? xml.length : end;
    }
  }
  return tokens;
}

export function parsePlist(xml: string): PlistValue {
  const tokens = tokenize(xml).filter((t) => !(t.kind === 'text' && /^\s*$/.test(t.text)));
  let pos = 0;
  const next = (): Token => {
    const t = tokens[pos++];
    if (!t) throw new Error('unexpected end of document');
    return t;
  };
  const expectClose = (name: string) => {
    const t = next();
    if (t.kind !== 'close' || t.name !== name)
      throw new Error(`expected </${name}> at ${t.at}, got ${t.kind} ${t.name}`);
  };
  const textOf = (name: string): string => {
    const t = tokens[pos];
    let text = '';
    if (t?.kind === 'text') {
      text = t.text;
      pos++;
    }
    expectClose(name);
    return text;
  };
  const value = (): PlistValue => {
    const t = next();
    if (t.kind === 'text') throw new Error(`stray text ${JSON.stringify(t.text.slice(0, 20))} at ${t.at}`);
    if (t.kind === 'close') throw new Error(`unexpected </${t.name}> at ${t.at}`);
    if (t.kind === 'empty') {
      if (t.name === 'true') return true;
      if (t.name === 'false') return false;
      if (t.name === 'string') return '';
      if (t.name === 'dict') return {};
      if (t.name === 'array') return [];
      throw new Error(`unknown element <${t.name}/> at ${t.at}`);
    }
    switch (t.name) {
      case 'string':
        return textOf('string');
      case 'integer': {
        const s = textOf('integer').trim();
        if (!/^[+-]?\d+$/.test(s)) throw new Error(`not an integer: ${s} at ${t.at}`);
        return Number(s);
      }
      case 'real': {
        const n = Number(textOf('real').trim());
        if (Number.isNaN(n)) throw new Error(`not a real at ${t.at}`);
        return n;
      }
      case 'array': {
        const out: PlistValue[] = [];
        while (!(tokens[pos]?.kind === 'close' && tokens[pos].name === 'array')) out.push(value());
        pos++;
        return out;
      }
      case 'dict': {
        const out: Record<string, PlistValue> = {};
        while (!(tokens[pos]?.kind === 'close' && tokens[pos].name === 'dict')) {
          const k = next();
          if (k.kind !== 'open' || k.name !== 'key') throw new Error(`expected <key> in dict at ${k.at}`);
          const key = textOf('key');
          if (key in out) throw new Error(`duplicate key ${key} at ${k.at}`);
          out[key] = value();
        }
        pos++;
        return out;
      }
      default:
        throw new Error(`unknown element <${t.name}> at ${t.at}`);
    }
  };
  const root = next();
  if (root.kind !== 'open' || root.name !== 'plist') throw new Error('the root element must be <plist>');
  const v = value();
  expectClose('plist');
  if (pos !== tokens.length) throw new Error(`content after </plist> at ${tokens[pos].at}`);
  return v;
}
