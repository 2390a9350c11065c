/** JSON schemas shared by the route groups: they validate input and document output. */

export const errorSchema = {
  type: 'object',
  properties: { code: { type: 'string' }, message: { type: 'string' }, fix: { type: 'string' } },
  required: ['code', 'message'],
} as const;

export const nameParams = {
  type: 'object',
  properties: { name: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$' } },
  required: ['name'],
} as const;

export const errorResponses = {
  400: errorSchema,
  401: errorSchema,
  403: errorSchema,
  404: errorSchema,
  409: errorSchema,
  502: errorSchema,
} as const;
