/**
 * The client side of the session handshake (SPEC 8): answer the agent's HandshakeRequest, wait for
 * HandshakeComplete. Pure: it turns payloads into a response payload and a result.
 */
import { ProtocolError } from './errors.js';
import {
  ActionStatus,
  type HandshakeRequest,
  type HandshakeResponse,
  type PortProperties,
  type ProcessedClientAction,
  parseHandshakeComplete,
  parseHandshakeRequest,
  portProperties,
} from './payloads.js';

/**
 * The version we report in OpenDataChannel and HandshakeResponse. It drives the agent's mode choice:
 * it must be >= 1.2.332.0 so the agent picks mux with smux keepalive off (SPEC 3.3, 10.2, trap 6), and
 * 1.2.764.0 is the first plugin release with the signed WebSocket upgrade we also do.
 */
export const CLIENT_VERSION = '1.2.764.0';

export interface HandshakeAnswer {
  response: HandshakeResponse;
  /** Set when the request is acceptable for a port session. */
  session?: { agentVersion: string; properties: PortProperties };
  /** Set when the session cannot go on (the agent will cancel it on our Failed status). */
  error?: ProtocolError;
}

/** Builds the response to a HandshakeRequest: one processed action per requested action, in order. */
export function answerHandshakeRequest(
  req: HandshakeRequest,
  clientVersion = CLIENT_VERSION,
): HandshakeAnswer {
  const processed: ProcessedClientAction[] = [];
  let properties: PortProperties | undefined;
  let error: ProtocolError | undefined;
  for (const action of req.RequestedClientActions) {
    if (action.ActionType === 'SessionType') {
      const params = action.ActionParameters as { SessionType?: unknown } | undefined;
      const sessionType = params?.SessionType;
      const props = portProperties(action) ?? {};
      if (sessionType === 'Port' && props.type === 'LocalPortForwarding') {
        properties = props;
        processed.push({
          ActionType: 'SessionType',
          ActionStatus: ActionStatus.Success,
          ActionResult: null,
          Error: '',
        });
      } else {
        const why =
          sessionType === 'Port'
            ? `port session type ${JSON.stringify(props.type ?? '')} is not LocalPortForwarding; use AWS-StartPortForwardingSession or AWS-StartPortForwardingSessionToRemoteHost`
            : `session type ${JSON.stringify(sessionType)} is not supported; ssmtun only forwards ports`;
        error ??= new ProtocolError('UNSUPPORTED_SESSION', why);
        processed.push({
          ActionType: 'SessionType',
          ActionStatus: ActionStatus.Failed,
          ActionResult: null,
          Error: why,
        });
      }
    } else if (action.ActionType === 'KMSEncryption') {
      // Current agents never encrypt Port sessions (SPEC 9); a Failed answer makes the agent cancel cleanly.
      const why = 'KMS encryption is not supported by ssmtun for port sessions';
      error ??= new ProtocolError('UNSUPPORTED_SESSION', why);
      processed.push({
        ActionType: 'KMSEncryption',
        ActionStatus: ActionStatus.Failed,
        ActionResult: null,
        Error: why,
      });
    } else {
      processed.push({
        ActionType: action.ActionType,
        ActionStatus: ActionStatus.Unsupported,
        ActionResult: null,
        Error: `unsupported action type ${action.ActionType}`,
      });
    }
  }
  if (!properties && !error) {
    error = new ProtocolError('HANDSHAKE_FAILED', 'HandshakeRequest carried no SessionType action');
  }
  return {
    response: { ClientVersion: clientVersion, ProcessedClientActions: processed, Errors: null },
    session: properties && !error ? { agentVersion: req.AgentVersion, properties } : undefined,
    error,
  };
}

export type HandshakeState = 'awaiting-request' | 'awaiting-complete' | 'complete' | 'failed';

/** Tracks the client's progress through the handshake; the port session feeds it handshake payloads. */
export class ClientHandshake {
  state: HandshakeState = 'awaiting-request';
  agentVersion = '';
  properties: PortProperties = {};
  customerMessage = '';

  constructor(private readonly clientVersion = CLIENT_VERSION) {}

  /**
   * Handles a HandshakeRequest payload. Returns the response payload to send, or a typed error. A
   * second request after we answered is ignored (returns undefined).
   */
  onRequest(payload: Uint8Array): { response: HandshakeResponse; error?: ProtocolError } | undefined {
    if (this.state !== 'awaiting-request') return undefined;
    const req = parseHandshakeRequest(payload);
    if (!req) {
      this.state = 'failed';
      return {
        response: {
          ClientVersion: this.clientVersion,
          ProcessedClientActions: [],
          Errors: ['malformed request'],
        },
        error: new ProtocolError('HANDSHAKE_FAILED', 'malformed HandshakeRequest'),
      };
    }
    const answer = answerHandshakeRequest(req, this.clientVersion);
    this.agentVersion = req.AgentVersion;
    if (answer.session) {
      this.properties = answer.session.properties;
      this.state = 'awaiting-complete';
    } else {
      this.state = 'failed';
    }
    return { response: answer.response, error: answer.error };
  }

  /** Handles HandshakeComplete; returns true when the handshake is now complete. */
  onComplete(payload: Uint8Array): boolean {
    if (this.state !== 'awaiting-complete') return false;
    this.customerMessage = parseHandshakeComplete(payload)?.CustomerMessage ?? '';
    this.state = 'complete';
    return true;
  }
}
