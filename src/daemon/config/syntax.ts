/** Turning smol-toml syntax errors into an issue with a concrete fix for the line at fault. */

import type { TomlError } from 'smol-toml';
import { PositionScanner } from './locate.js';
import type { ConfigIssue } from './types.js';

export function syntaxIssue(err: TomlError, text: string, file: string): ConfigIssue {
  const reason = err.message.split('\n')[0].replace(/^Invalid TOML document: /, '');
  const lineText = text.split(/\r?\n/)[err.line - 1] ?? '';
  return {
    file,
    line: err.line,
    column: err.column,
    message: `invalid TOML: ${reason}`,
    fix: syntaxFix(reason, lineText, err.line, text),
  };
}

function syntaxFix(reason: string, lineText: string, line: number, text: string): string {
  const trimmed = lineText.trim();
  const eq = lineText.indexOf('=');
  const key = eq > 0 ? lineText.slice(0, eq).trim() : '';
  const value =
    eq > 0
      ? lineText
          .slice(eq + 1)
          .replace(/\s+#.*$/, '')
          .trim()
      : '';

  if (/unfinished string|control characters are not allowed in strings/.test(reason)) {
    return 'Close the string with a matching quote on the same line (use """...""" for text spanning several lines).';
  }
  if (reason === 'invalid value') {
    if (eq > 0 && value === '') return `Write a value after "=", e.g. ${key} = "..." or ${key} = 5432.`;
    if (eq > 0) {
      const unquoted = value.replace(/^["']|["']$/g, '');
      return `Text values need quotes: ${key} = ${JSON.stringify(unquoted)} (numbers and true/false are written without quotes).`;
    }
    return 'Text values need quotes, e.g. region = "eu-west-1"; numbers and true/false are written without quotes.';
  }
  if (/numeric|leading zero|underscore/.test(reason)) {
    if (eq > 0 && /^\[?[\w.:]+/.test(value) && /[.:]/.test(value) && /[0-9]/.test(value)) {
      return `Addresses and other text need quotes, e.g. "127.0.0.1"; only plain whole numbers go without quotes.`;
    }
    return 'Write plain whole numbers (no leading zeros), or put the value in quotes if it is text.';
  }
  if (/expected comma or end of structure|unfinished array/.test(reason)) {
    return 'Separate items with commas and close the array with ] (or the inline table with }); quote text items.';
  }
  if (/end-of-line/.test(reason)) {
    return 'Put each key = value on its own line, and quote text that contains spaces.';
  }
  if (/key|unfinished table|table array declaration/.test(reason)) {
    if (trimmed.startsWith('[')) {
      return (
        'Write the header as [tunnels.NAME] with a closing ]; names with characters other than letters, digits, ' +
        '"_" and "-" need quotes, e.g. [tunnels."orders.db"].'
      );
    }
    return 'Write key = value; keys may only contain letters, digits, "_" and "-" (see the key list in the docs).';
  }
  if (/redefine/.test(reason)) {
    const first = new PositionScanner(text).scan().firstDefinition(line);
    return (
      `Each [table] and key may appear only once${first ? ` and this one is already defined at line ${first}` : ''}; ` +
      'merge the two or rename one (tunnel names must be unique).'
    );
  }
  if (/escape/.test(reason)) {
    return 'In "..." strings a backslash starts an escape; write \\\\ for a backslash, or use a \'single-quoted\' literal string.';
  }
  if (/losslessly/.test(reason)) return 'Use a smaller number.';
  if (/comments/.test(reason)) return 'Remove the control character from the comment.';
  return 'Check the TOML syntax at this position (see https://toml.io).';
}
