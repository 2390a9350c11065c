/**
 * A throw-away certificate authority for the simulated RDS endpoints: a self-signed CA and, per RDS
 * host name, a server certificate with that name as its DNS subjectAltName, so a client with
 * `sslmode=verify-full sslrootcert=ca.pem host=<rds name>` really verifies the chain and the name.
 * Made with the `openssl` command because node's crypto cannot issue certificates. Everything goes
 * through config files (-config/-extfile) rather than -addext, which macOS's LibreSSL lacks.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export const SIM_CA_COMMON_NAME = 'ssmtun simulated RDS CA';
const VALIDITY_DAYS = '2';
/** X.509 caps the CN at 64 characters; the SAN is what clients check anyway. */
const MAX_CN = 64;
const HOST_RE =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export class SimCaError extends Error {
  readonly code = 'SIM_OPENSSL_FAILED';
  constructor(
    message: string,
    readonly fix = 'install the openssl command (Debian: apt-get install openssl; macOS ships it)',
  ) {
    super(message);
    this.name = 'SimCaError';
  }
}

export interface ServerCertificate {
  /** PEM certificate followed by nothing else (the CA is the client's trust anchor). */
  cert: string;
  key: string;
}

export interface SimCa {
  /** The temp dir holding the CA and its keys; removed by close(). */
  dir: string;
  /** ca.pem, mode 0644: what clients pass as sslrootcert. */
  caFile: string;
  caPem: string;
  /** A certificate for `host` (cached per host), signed by this CA. */
  serverCert(host: string): Promise<ServerCertificate>;
  close(): Promise<void>;
}

function openssl(args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { cwd, encoding: 'utf8', timeout: 30_000 }, (err, _stdout, stderr) => {
      if (!err) {
        resolve();
        return;
      }
      const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
      reject(
        new SimCaError(
          missing
            ? 'the openssl command was not found on PATH'
            : `openssl ${args[0]} failed: ${(stderr || err.message).trim()}`,
        ),
      );
    });
  });
}

/** EC P-256 keys: instant to make, and accepted by libpq, node and every TLS stack we care about. */
async function newKey(dir: string, file: string): Promise<void> {
  await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', file], dir);
  await chmod(path.join(dir, file), 0o600);
}

const REQ_CONFIG = `[req]
distinguished_name = dn
[dn]
[v3_ca]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
`;

function serverExtensions(host: string): string {
  return `[v3_server]
basicConstraints = critical,CA:false
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:${host}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`;
}

export async function createSimCa(): Promise<SimCa> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ssmtun-sim-ca-'));
  try {
    // Readable by others so ca.pem (0644) is usable by any local client; the keys stay 0600.
    await chmod(dir, 0o755);
    await writeFile(path.join(dir, 'req.cnf'), REQ_CONFIG);
    await newKey(dir, 'ca.key');
    await openssl(
      [
        'req',
        '-new',
        '-x509',
        '-config',
        'req.cnf',
        '-extensions',
        'v3_ca',
        '-key',
        'ca.key',
        '-subj',
        `/CN=${SIM_CA_COMMON_NAME}`,
        '-days',
        VALIDITY_DAYS,
        '-sha256',
        '-out',
        'ca.pem',
      ],
      dir,
    );
    const caFile = path.join(dir, 'ca.pem');
    await chmod(caFile, 0o644);
    const caPem = await readFile(caFile, 'utf8');

    const certs = new Map<string, Promise<ServerCertificate>>();
    let counter = 0;
    const issue = async (host: string): Promise<ServerCertificate> => {
      const base = `server-${++counter}`;
      await newKey(dir, `${base}.key`);
      await writeFile(path.join(dir, `${base}.ext`), serverExtensions(host));
      const cn = host.length <= MAX_CN ? host : host.split('.')[0];
      await openssl(
        [
          'req',
          '-new',
          '-config',
          'req.cnf',
          '-key',
          `${base}.key`,
          '-subj',
          `/CN=${cn}`,
          '-out',
          `${base}.csr`,
        ],
        dir,
      );
      await openssl(
        [
          'x509',
          '-req',
          '-in',
          `${base}.csr`,
          '-CA',
          'ca.pem',
          '-CAkey',
          'ca.key',
          '-set_serial',
          `0x${randomBytes(8).toString('hex')}`,
          '-days',
          VALIDITY_DAYS,
          '-sha256',
          '-extfile',
          `${base}.ext`,
          '-extensions',
          'v3_server',
          '-out',
          `${base}.pem`,
        ],
        dir,
      );
      return {
        cert: await readFile(path.join(dir, `${base}.pem`), 'utf8'),
        key: await readFile(path.join(dir, `${base}.key`), 'utf8'),
      };
    };

    let closing: Promise<void> | undefined;
    return {
      dir,
      caFile,
      caPem,
      serverCert(host) {
        if (!HOST_RE.test(host))
          return Promise.reject(
            new SimCaError(`not a DNS name: ${JSON.stringify(host)}`, 'use a DNS host name'),
          );
        const key = host.toLowerCase();
        let cert = certs.get(key);
        if (!cert) {
          cert = issue(key);
          certs.set(key, cert);
          cert.catch(() => certs.delete(key));
        }
        return cert;
      },
      close() {
        closing ??= rm(dir, { recursive: true, force: true });
        return closing;
      },
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
