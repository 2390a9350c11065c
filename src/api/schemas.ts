/** JSON schemas shared by the route groups: they validate input and document output (/openapi.json). */

export const errorSchema = {
  type: 'object',
  properties: {
    code: { type: 'string' },
    message: { type: 'string' },
    fix: { type: 'string' },
    issues: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          key: { type: 'string' },
          line: { type: 'integer' },
          message: { type: 'string' },
          fix: { type: 'string' },
        },
      },
    },
  },
  required: ['code', 'message'],
} as const;

export const nameParams = {
  type: 'object',
  properties: { name: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$' } },
  required: ['name'],
} as const;

/** Ranges rather than one entry per status: each entry is a compiled serializer held in memory. */
export const errorResponses = {
  '4xx': errorSchema,
  '5xx': errorSchema,
} as const;

export const tunnelStatusSchema = {
  type: 'object',
  additionalProperties: true,
  properties: {
    name: { type: 'string' },
    state: {
      type: 'string',
      enum: ['listening', 'connecting', 'open', 'reconnecting', 'degraded', 'error', 'stopped'],
    },
    origin: { type: 'string', enum: ['config', 'api'] },
    localPort: { type: 'integer' },
    bind: { type: 'array', items: { type: 'string' } },
    listening: { type: 'array', items: { type: 'string' } },
    remote: { type: 'string' },
    target: { type: 'string' },
    resolvedTarget: { type: 'string' },
    sessionId: { type: 'string' },
    mode: { type: 'string', enum: ['mux', 'basic'] },
    agentVersion: { type: 'string' },
    note: { type: 'string' },
    connections: { type: 'integer' },
    waiting: { type: 'integer' },
    totalConnections: { type: 'integer' },
    bytesToRemote: { type: 'integer' },
    bytesFromRemote: { type: 'integer' },
    rttMs: { type: 'number' },
    retransmissions: { type: 'integer' },
    reconnects: { type: 'integer' },
    sessionsStarted: { type: 'integer' },
    openedAt: { type: 'string' },
    lastOpen: {
      type: 'object',
      description: 'the last session open, step by step in ms (targetMs: finding the target by tag)',
      properties: {
        targetMs: { type: 'number' },
        startSessionMs: { type: 'number' },
        connectMs: { type: 'number' },
        handshakeMs: { type: 'number' },
        totalMs: { type: 'number' },
        preconnected: { type: 'boolean' },
        at: { type: 'string' },
      },
    },
    poolSize: { type: 'integer' },
    sessions: {
      type: 'array',
      description: 'sessions = N > 1: the pool members',
      items: {
        type: 'object',
        properties: {
          member: { type: 'integer' },
          state: { type: 'string' },
          sessionId: { type: 'string' },
          mode: { type: 'string' },
          connections: { type: 'integer' },
          waiting: { type: 'integer' },
        },
      },
    },
    logins: {
      type: 'object',
      additionalProperties: true,
      description: 'auth = "iam": logins, loginFailures by reason, cancels',
    },
    lastError: {
      type: 'object',
      properties: {
        code: { type: 'string' },
        message: { type: 'string' },
        fix: { type: 'string' },
        at: { type: 'string' },
      },
    },
  },
  required: ['name', 'state', 'localPort'],
} as const;

const key = (description: string) => ({ description });

/**
 * A tunnel as the API takes it: the config file's keys. Types are left to the config validator on
 * purpose, so the API answers with the same messages (and did-you-means) as the config file.
 */
export const tunnelBodyProperties = {
  region: key('AWS region of the target, e.g. "eu-west-1" (required)'),
  target: key('instance id "i-…" (this or target_tag is required)'),
  target_tag: key('"Key=Value" of an online managed instance'),
  remote_host: key('host the instance forwards to, e.g. an RDS endpoint name'),
  remote_port: key('integer 1-65535 (required)'),
  local_port: key('integer 1-65535 (required)'),
  profile: key('AWS profile'),
  bind: key('array of loopback addresses'),
  engine: key('"postgres" or "mysql"'),
  db_user: key('database user for IAM tokens'),
  db_name: key('database name'),
  ca_bundle: key('PEM file of CAs for TLS verification'),
  sslmode: key('libpq sslmode, default "verify-full"'),
  sessions: key('SSM sessions to spread connections over, 1..16 (default 1)'),
  auth: key('"none" (plain forwarding) or "iam" (the local port logs in to RDS for the client)'),
  db_users: key('more database users allowed through an auth = "iam" tunnel'),
  allow_other_users: key('boolean: let other local OS users connect to an auth = "iam" tunnel'),
  idle_timeout: key('"10m", "90s", seconds, or "0"'),
  lazy: key('boolean'),
  endpoint: key('SSM endpoint URL override'),
} as const;

export const tunnelBodySchema = {
  type: 'object',
  properties: { name: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$' }, ...tunnelBodyProperties },
  required: ['name'],
  additionalProperties: true,
} as const;

export const tunnelPatchSchema = {
  type: 'object',
  properties: tunnelBodyProperties,
  additionalProperties: true,
} as const;
