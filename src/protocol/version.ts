/**
 * Version comparisons exactly as each upstream side does them (SPEC 10.2). The two sides use different
 * rules and decide the session mode independently, so both are needed: the client rule for the daemon,
 * the agent rule for the simulator's agent.
 */

/** Plugin rule: feature on only if `version` > `threshold`, same component count, all base-10 integers. */
export function pluginVersionGreater(version: string, threshold: string): boolean {
  const a = version.split('.');
  const b = threshold.split('.');
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (!/^\d+$/.test(a[i]) || !/^\d+$/.test(b[i])) return false;
  }
  for (let i = 0; i < a.length; i++) {
    const x = Number(a[i]);
    const y = Number(b[i]);
    if (x !== y) return x > y;
  }
  return false;
}

/**
 * Agent rule (versionutil): numeric where both components are integers, string order otherwise; when
 * all shared components are equal the one with fewer components is smaller. Returns -1, 0 or 1.
 */
export function agentCompareVersions(a: string, b: string): number {
  const x = a.split('.');
  const y = b.split('.');
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) {
    const xi = x[i];
    const yi = y[i];
    if (/^\d+$/.test(xi) && /^\d+$/.test(yi)) {
      const d = Number(xi) - Number(yi);
      if (d !== 0) return d < 0 ? -1 : 1;
    } else if (xi !== yi) {
      return xi < yi ? -1 : 1;
    }
  }
  return x.length === y.length ? 0 : x.length < y.length ? -1 : 1;
}

/** Client-side gates on the agent's version (SPEC 10.2, plugin). */
export const AGENT_GATE_TERMINATE_FLAG = '2.3.722.0';
export const AGENT_GATE_MUX = '3.0.196.0';
export const AGENT_GATE_SMUX_KEEPALIVE_OFF = '3.1.1511.0';

/** Agent-side gates on the client's version (SPEC 10.2, agent). */
export const CLIENT_GATE_MUX = '1.1.70';
export const CLIENT_GATE_SMUX_KEEPALIVE_OFF = '1.2.331.0';

export interface ClientModeDecision {
  mode: 'mux' | 'basic';
  smuxKeepalive: boolean;
  terminateFlag: boolean;
}

/** What the client (daemon) decides from the agent's version, for a LocalPortForwarding session. */
export function clientModeFor(agentVersion: string): ClientModeDecision {
  const mux = pluginVersionGreater(agentVersion, AGENT_GATE_MUX);
  return {
    mode: mux ? 'mux' : 'basic',
    smuxKeepalive: mux && !pluginVersionGreater(agentVersion, AGENT_GATE_SMUX_KEEPALIVE_OFF),
    // Mux implies an agent new enough for the flag (SPEC 10.7).
    terminateFlag: mux || pluginVersionGreater(agentVersion, AGENT_GATE_TERMINATE_FLAG),
  };
}

/** Agent releases that changed its side of the decision (SPEC 10.2, historical notes). */
export const AGENT_FIRST_MUX = '3.0.222.0';
export const AGENT_KEEPALIVE_ALWAYS_OFF = '3.1.1446.0';
export const AGENT_FIRST_CLIENT_KEEPALIVE_RULE = '3.1.1575.0';

/**
 * What an agent of version `agentVersion` decides from the client's version and the document's `type`
 * property. Agents before 3.0.222.0 have no mux at all; before 3.1.1575.0 keepalive did not depend on
 * the client (on, except in 3.1.1446.0).
 */
export function agentModeFor(
  clientVersion: string,
  portType: string | undefined,
  agentVersion = AGENT_FIRST_CLIENT_KEEPALIVE_RULE,
): { mode: 'mux' | 'basic'; smuxKeepalive: boolean } {
  const mux =
    portType === 'LocalPortForwarding' &&
    agentCompareVersions(agentVersion, AGENT_FIRST_MUX) >= 0 &&
    agentCompareVersions(clientVersion, CLIENT_GATE_MUX) >= 0;
  let smuxKeepalive: boolean;
  if (agentCompareVersions(agentVersion, AGENT_FIRST_CLIENT_KEEPALIVE_RULE) >= 0) {
    smuxKeepalive = agentCompareVersions(clientVersion, CLIENT_GATE_SMUX_KEEPALIVE_OFF) <= 0;
  } else {
    smuxKeepalive = agentCompareVersions(agentVersion, AGENT_KEEPALIVE_ALWAYS_OFF) !== 0;
  }
  return { mode: mux ? 'mux' : 'basic', smuxKeepalive };
}
