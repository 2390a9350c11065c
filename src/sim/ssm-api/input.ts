/**
 * The AWS JSON 1.1 error form and the input checks every SSM operation shares: the messages follow
 * the real service's ("1 validation error detected: Value ... at 'member' failed to satisfy
 * constraint: ..."), so the SDK raises the same typed exceptions it would against AWS.
 */

export type Json = Record<string, unknown>;

/** An error answered to the caller in AWS JSON 1.1 form. */
export class SsmApiError extends Error {
  readonly code: string;
  readonly status: number;
  constructor(code: string, message: string, status = 400) {
    super(message);
    this.name = 'SsmApiError';
    this.code = code;
    this.status = status;
  }
}

export function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function validation(message: string): SsmApiError {
  return new SsmApiError('ValidationException', `1 validation error detected: ${message}`);
}

export function optionalString(input: Json, field: string, member: string, max: number): string | undefined {
  const v = input[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new SsmApiError('SerializationException', `${field} must be a string`);
  if (v.length < 1 || v.length > max) {
    throw validation(
      `Value '${v}' at '${member}' failed to satisfy constraint: Member must have length between 1 and ${max}`,
    );
  }
  return v;
}

export function requiredString(input: Json, field: string, member: string, max: number): string {
  const v = optionalString(input, field, member, max);
  if (v === undefined)
    throw validation(`Value null at '${member}' failed to satisfy constraint: Member must not be null`);
  return v;
}

export function stringArray(v: unknown, member: string): string[] {
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) {
    throw validation(`Value at '${member}' failed to satisfy constraint: Member must be a list of strings`);
  }
  return v as string[];
}
