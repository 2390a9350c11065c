/** Which keys each table accepts, the names people mistake them for, and the patterns values must match. */

export const TUNNEL_KEYS = [
  'profile',
  'region',
  'target',
  'target_tag',
  'remote_host',
  'remote_port',
  'local_port',
  'bind',
  'db_user',
  'db_name',
  'engine',
  'idle_timeout',
  'endpoint',
  'lazy',
  'ca_bundle',
  'sslmode',
  'auth',
  'db_users',
  'allow_other_users',
  'sessions',
  'max_buffer',
  'max_connections',
] as const;
export const DAEMON_KEYS = ['api_port', 'log_level', 'pgpass', 'pgservice'] as const;
export const TOP_KEYS = ['daemon', 'tunnels'] as const;

// Names people reach for from other tools; keys are normalized (lower case, no '_' or '-').
export const TUNNEL_ALIASES: Record<string, string> = {
  host: 'remote_host',
  hostname: 'remote_host',
  remote: 'remote_host',
  dbhost: 'remote_host',
  port: 'remote_port',
  dbport: 'remote_port',
  instance: 'target',
  instanceid: 'target',
  tag: 'target_tag',
  tags: 'target_tag',
  user: 'db_user',
  username: 'db_user',
  database: 'db_name',
  db: 'db_name',
  timeout: 'idle_timeout',
  idle: 'idle_timeout',
  awsprofile: 'profile',
  awsregion: 'region',
  listen: 'bind',
  address: 'bind',
  bindaddress: 'bind',
  url: 'endpoint',
  endpointurl: 'endpoint',
  type: 'engine',
  driver: 'engine',
  dialect: 'engine',
  ca: 'ca_bundle',
  cafile: 'ca_bundle',
  sslrootcert: 'ca_bundle',
  ssl: 'sslmode',
  tls: 'sslmode',
  authentication: 'auth',
  authmode: 'auth',
  iam: 'auth',
  users: 'db_users',
  dbuserlist: 'db_users',
  allowedusers: 'db_users',
  allowotheruser: 'allow_other_users',
  allowusers: 'allow_other_users',
};
export const DAEMON_ALIASES: Record<string, string> = {
  port: 'api_port',
  level: 'log_level',
  log: 'log_level',
  passfile: 'pgpass',
  pgpassfile: 'pgpass',
  servicefile: 'pgservice',
  pgservicefile: 'pgservice',
};
export const ENGINE_ALIASES: Record<string, string> = {
  postgresql: 'postgres',
  pg: 'postgres',
  psql: 'postgres',
  aurorapostgresql: 'postgres',
  mariadb: 'mysql',
  auroramysql: 'mysql',
};

export const TUNNEL_NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;
export const INSTANCE_ID_RE = /^(?:i|mi)-[0-9a-f]{8,17}$/;
// Covers partition-style regions too (us-gov-west-1, cn-north-1, eu-isoe-west-1).
export const REGION_RE = /^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$/;

export const SAMPLE_INSTANCE = 'i-0123456789abcdef0';
export const SAMPLE_TAG = 'Name=bastion';

export function isTunnelKey(k: string): boolean {
  return (TUNNEL_KEYS as readonly string[]).includes(k);
}

export function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}
