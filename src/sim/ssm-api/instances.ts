/**
 * DescribeInstanceInformation over the simulator's instances: both filter styles (`Filters` and the
 * older `InstanceInformationFilterList`), the keys and values the real API accepts, pages of at most
 * MaxResults (5-50) and an opaque NextToken.
 */
import type { SimInstance } from '../sessions.js';
import { isObject, type Json, optionalString, SsmApiError, stringArray, validation } from './input.js';

const PING_STATUSES = new Set(['Online', 'ConnectionLost', 'Inactive']);
const FILTER_LIST_KEYS = new Set([
  'InstanceIds',
  'AgentVersion',
  'PingStatus',
  'PlatformTypes',
  'ActivationIds',
  'IamRole',
  'ResourceType',
  'AssociationStatus',
]);

type InstanceFilter = (instance: SimInstance) => boolean;

function decodeNextToken(token: string): number {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (isObject(parsed) && Number.isSafeInteger(parsed.o) && (parsed.o as number) > 0)
      return parsed.o as number;
  } catch {
    // fall through: any undecodable token is simply invalid
  }
  throw new SsmApiError('InvalidNextToken', 'The specified token isn\u2019t valid.');
}

function encodeNextToken(offset: number): string {
  return Buffer.from(JSON.stringify({ o: offset })).toString('base64url');
}

function instanceFilter(key: string, values: string[]): InstanceFilter {
  const set = new Set(values);
  if (key.startsWith('tag:') && key.length > 4) {
    const tag = key.slice(4);
    return (i) => Object.hasOwn(i.tags, tag) && set.has(i.tags[tag]);
  }
  switch (key) {
    case 'tag-key':
      return (i) => values.some((k) => Object.hasOwn(i.tags, k));
    case 'InstanceIds':
      return (i) => set.has(i.id);
    case 'PingStatus':
      for (const v of values) {
        if (!PING_STATUSES.has(v)) {
          throw new SsmApiError(
            'InvalidInstanceInformationFilterValue',
            `${v} is not a valid value for the PingStatus filter.`,
          );
        }
      }
      return (i) => set.has(i.pingStatus);
    case 'AgentVersion':
      return (i) => set.has(i.agentVersion);
    case 'PlatformTypes':
      return () => set.has('Linux');
    case 'ResourceType':
      return () => set.has('EC2Instance');
    case 'ActivationIds':
    case 'IamRole':
    case 'AssociationStatus':
      // Simulated instances have no activation, role name or associations to match.
      return () => false;
    default:
      throw new SsmApiError('InvalidFilterKey', `The filter key ${key} is not valid.`);
  }
}

export function describeInstanceInformation(
  input: Json,
  instances: readonly SimInstance[],
  now: number,
): Json {
  const filters: InstanceFilter[] = [];
  if (input.Filters !== undefined && input.Filters !== null) {
    if (!Array.isArray(input.Filters))
      throw validation("Value at 'filters' failed to satisfy constraint: Member must be a list");
    input.Filters.forEach((f: unknown, idx: number) => {
      if (!isObject(f) || typeof f.Key !== 'string' || f.Key.length === 0) {
        throw validation(
          `Value null at 'filters.${idx + 1}.member.key' failed to satisfy constraint: Member must not be null`,
        );
      }
      const values = stringArray(f.Values, `filters.${idx + 1}.member.values`);
      if (values.length === 0) {
        throw new SsmApiError(
          'InvalidInstanceInformationFilterValue',
          `Filter ${f.Key} needs at least one value.`,
        );
      }
      filters.push(instanceFilter(f.Key, values));
    });
  }
  if (input.InstanceInformationFilterList !== undefined && input.InstanceInformationFilterList !== null) {
    const list = input.InstanceInformationFilterList;
    if (!Array.isArray(list)) {
      throw validation(
        "Value at 'instanceInformationFilterList' failed to satisfy constraint: Member must be a list",
      );
    }
    list.forEach((f: unknown, idx: number) => {
      if (!isObject(f) || typeof f.key !== 'string' || !FILTER_LIST_KEYS.has(f.key)) {
        throw validation(
          `Value at 'instanceInformationFilterList.${idx + 1}.member.key' failed to satisfy constraint: Member must satisfy enum value set: [${[...FILTER_LIST_KEYS].join(', ')}]`,
        );
      }
      const values = stringArray(f.valueSet, `instanceInformationFilterList.${idx + 1}.member.valueSet`);
      if (values.length === 0) {
        throw new SsmApiError(
          'InvalidInstanceInformationFilterValue',
          `Filter ${f.key} needs at least one value.`,
        );
      }
      filters.push(instanceFilter(f.key, values));
    });
  }
  let pageSize = 50;
  if (input.MaxResults !== undefined && input.MaxResults !== null) {
    const max = input.MaxResults;
    if (typeof max !== 'number' || !Number.isInteger(max) || max < 5 || max > 50) {
      throw validation(
        `Value '${String(max)}' at 'maxResults' failed to satisfy constraint: Member must have value between 5 and 50`,
      );
    }
    pageSize = max;
  }
  const nextToken = optionalString(input, 'NextToken', 'nextToken', 4096);
  const start = nextToken === undefined ? 0 : decodeNextToken(nextToken);

  const matching = instances.filter((i) => filters.every((f) => f(i)));
  const page = matching.slice(start, start + pageSize);
  const nowSeconds = Math.floor(now / 1000);
  const out: Json = {
    InstanceInformationList: page.map((i) => ({
      InstanceId: i.id,
      PingStatus: i.pingStatus,
      // A lost instance stopped pinging a while ago; an online one pinged just now.
      LastPingDateTime: i.pingStatus === 'Online' ? nowSeconds : nowSeconds - 600,
      AgentVersion: i.agentVersion,
      IsLatestVersion: false,
      PlatformType: 'Linux',
      PlatformName: 'Amazon Linux',
      PlatformVersion: '2023',
      ResourceType: 'EC2Instance',
      SourceId: i.id,
      SourceType: 'AWS::EC2::Instance',
      ...(i.tags.Name !== undefined ? { ComputerName: i.tags.Name } : {}),
    })),
  };
  if (start + pageSize < matching.length) out.NextToken = encodeNextToken(start + pageSize);
  return out;
}
