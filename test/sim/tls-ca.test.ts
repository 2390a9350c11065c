import { X509Certificate } from 'node:crypto';
import { statSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSimCa, SIM_CA_COMMON_NAME, type SimCa } from '../../src/sim/tls-ca.js';

const HOST = 'orders.cluster-c0ffee.us-east-1.rds.amazonaws.com';

/** A real TLS handshake against a server holding `HOST`'s certificate; resolves the client's verdict. */
async function handshake(ca: SimCa, servername: string): Promise<string> {
  const { cert, key } = await ca.serverCert(HOST);
  const server = tls.createServer({ cert, key }, (s) => s.end());
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    return await new Promise<string>((resolve) => {
      const sock = tls.connect({
        host: '127.0.0.1',
        port: (server.address() as AddressInfo).port,
        ca: ca.caPem,
        servername,
      });
      sock.on('secureConnect', () => {
        resolve('ok');
        sock.destroy();
      });
      sock.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    });
  } finally {
    await new Promise((r) => server.close(r));
  }
}

describe('simulated RDS CA (openssl)', () => {
  let ca: SimCa;
  beforeAll(async () => {
    ca = await createSimCa();
  });
  afterAll(async () => {
    await ca?.close();
  });

  it('writes a self-signed CA certificate, ca.pem 0644, keys 0600', () => {
    const x = new X509Certificate(ca.caPem);
    expect(x.subject).toBe(`CN=${SIM_CA_COMMON_NAME}`);
    expect(x.issuer).toBe(x.subject);
    expect(x.ca).toBe(true);
    expect(x.verify(x.publicKey)).toBe(true);
    const days = (Date.parse(x.validTo) - Date.parse(x.validFrom)) / 86_400_000;
    expect(days).toBe(2);
    expect(statSync(ca.caFile).mode & 0o777).toBe(0o644);
    expect(statSync(`${ca.dir}/ca.key`).mode & 0o777).toBe(0o600);
  });

  it('issues a server certificate for the RDS name, signed by the CA', async () => {
    const { cert } = await ca.serverCert(HOST);
    const x = new X509Certificate(cert);
    expect(x.subjectAltName).toBe(`DNS:${HOST}`);
    expect(x.ca).toBe(false);
    expect(x.checkHost(HOST)).toBe(HOST);
    expect(x.checkHost('127.0.0.1')).toBeUndefined();
    expect(x.verify(new X509Certificate(ca.caPem).publicKey)).toBe(true);
    expect(await ca.serverCert(HOST)).toBe(await ca.serverCert(HOST));
  });

  it('a TLS client trusting only ca.pem accepts the RDS name and refuses any other', async () => {
    expect(await handshake(ca, HOST)).toBe('ok');
    expect(await handshake(ca, 'other.cluster-c0ffee.us-east-1.rds.amazonaws.com')).toBe(
      'ERR_TLS_CERT_ALTNAME_INVALID',
    );
  });

  it('refuses to issue for something that is not a DNS name', async () => {
    await expect(ca.serverCert('bad name/../x')).rejects.toThrow(/not a DNS name/);
  });

  it('close() removes the directory', async () => {
    const other = await createSimCa();
    await other.close();
    expect(() => statSync(other.dir)).toThrow();
  });
});
