/** Per-table validation state: where issues go, and the checks shared by every key (strings, ports, booleans, unknown keys). */

import { describe, example, tomlPath } from './render.js';
import { suggest } from './suggest.js';
import type { ConfigIssue } from './types.js';

export interface Ctx {
  file: string;
  /** Render examples in fixes as JSON (`"key": value`) for the HTTP API instead of TOML. */
  json: boolean;
  issues: ConfigIssue[];
  lineOf(path: readonly string[]): number;
}

/** One table of the config (or the JSON body of an API request) plus helpers to report on its keys. */
export class Section {
  /** Keys offered as did-you-mean; a "missing key" issue for them would repeat the same mistake. */
  readonly suggested = new Set<string>();

  constructor(
    readonly ctx: Ctx,
    readonly path: string[],
    readonly raw: Record<string, unknown>,
    /** How messages refer to this table: `[tunnels.db]`, `[daemon]`, `tunnel db`. */
    readonly where: string,
  ) {}

  get(key: string): unknown {
    if (!Object.hasOwn(this.raw, key)) return undefined;
    const v = this.raw[key];
    // JSON has null where TOML would just leave the key out.
    return v === null ? undefined : v;
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  /** Line of `key`, or of the table itself when the key is absent (missing-key issues land on the header). */
  line(key?: string): number {
    return this.ctx.lineOf(key === undefined ? this.path : [...this.path, key]);
  }

  report(key: string | undefined, message: string, fix: string, line = this.line(key)): void {
    const keyPath = tomlPath(key === undefined ? this.path : [...this.path, key]);
    this.ctx.issues.push({ file: this.ctx.file, line, key: keyPath, message, fix });
  }

  ex(key: string, value: unknown): string {
    return example(this.ctx.json, key, value);
  }

  string(key: string, sample: string, optional: boolean): string | undefined {
    const v = this.get(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'string') {
      this.report(
        key,
        `${key} in ${this.where} must be a string, not ${describe(v)}`,
        isScalar(v)
          ? `Put the value in quotes: ${this.ex(key, String(v))}.`
          : `Write e.g. ${this.ex(key, sample)}.`,
      );
      return undefined;
    }
    if (v.trim() === '') {
      this.report(
        key,
        `${key} in ${this.where} is empty`,
        `Write a value, e.g. ${this.ex(key, sample)}${optional ? ', or remove the key' : ''}.`,
      );
      return undefined;
    }
    return v;
  }

  port(key: string, sample: number): number | undefined {
    const v = this.get(key);
    if (v === undefined) return undefined;
    if (typeof v === 'string') {
      const n = Number(v.trim());
      this.report(
        key,
        `${key} in ${this.where} must be a number, not a string`,
        /^\s*\d+\s*$/.test(v) && isPort(n)
          ? `Write the number without quotes: ${this.ex(key, n)}.`
          : `Write a port number between 1 and 65535 without quotes, e.g. ${this.ex(key, sample)}.`,
      );
      return undefined;
    }
    if (typeof v !== 'number' && typeof v !== 'bigint') {
      this.report(
        key,
        `${key} in ${this.where} must be a number, not ${describe(v)}`,
        `Write a port number between 1 and 65535, e.g. ${this.ex(key, sample)}.`,
      );
      return undefined;
    }
    const n = Number(v);
    if (!Number.isInteger(n)) {
      this.report(
        key,
        `${key} in ${this.where} must be a whole number, not ${n}`,
        `Write e.g. ${this.ex(key, Math.round(n) || sample)}.`,
      );
      return undefined;
    }
    if (!isPort(n)) {
      this.report(
        key,
        `${key} ${n} in ${this.where} is out of range`,
        `Ports go from 1 to 65535; write e.g. ${this.ex(key, sample)}.`,
      );
      return undefined;
    }
    return n;
  }

  bool(key: string): boolean | undefined {
    const v = this.get(key);
    if (v === undefined || typeof v === 'boolean') return v;
    const asText = typeof v === 'string' ? v.trim().toLowerCase() : '';
    this.report(
      key,
      `${key} in ${this.where} must be true or false, not ${describe(v)}`,
      asText === 'true' || asText === 'false'
        ? `Write it without quotes: ${this.ex(key, asText === 'true')}.`
        : `Write ${this.ex(key, true)} or ${this.ex(key, false)}.`,
    );
    return undefined;
  }

  /** Missing and not explained by a misspelt key that was already reported. */
  missing(key: string): boolean {
    return !this.has(key) && !this.suggested.has(key);
  }

  /** Reports keys outside `allowed`, with a did-you-mean or a hint that the key belongs elsewhere. */
  unknownKeys(
    allowed: readonly string[],
    aliases: Record<string, string>,
    misplaced: (key: string, value: unknown) => string | undefined,
  ): void {
    for (const key of Object.keys(this.raw)) {
      if (allowed.includes(key)) continue;
      const value = this.raw[key];
      const elsewhere = misplaced(key, value);
      if (elsewhere) {
        this.report(key, `${key} is not allowed in ${this.where}`, elsewhere);
        continue;
      }
      const guess = suggest(key, allowed, aliases);
      if (guess) this.suggested.add(guess);
      this.report(
        key,
        `unknown key ${key} in ${this.where}`,
        guess
          ? `Did you mean ${guess}? Rename the key to ${guess}.`
          : `Remove it; valid keys are ${allowed.join(', ')}.`,
      );
    }
  }
}

function isScalar(v: unknown): boolean {
  return typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean';
}

function isPort(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= 65535;
}
