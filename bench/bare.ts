/**
 * The baseline: oidc-provider as its README sets it up, with nothing of Sesame's — the
 * default in-memory adapter, ES256 and RS256 keys made with jose, one static confidential
 * client allowed client_credentials, devInteractions off. Run as a child process by
 * run.ts; prints `{"port": ...}` on stdout once it listens.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';
import { BARE_CLIENT } from './httpLoad.js';

async function signingKey(alg: 'ES256' | 'RS256') {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  return { ...(await exportJWK(privateKey)), alg, use: 'sig', kid: alg.toLowerCase() };
}

async function main() {
  const issuer = process.env.BARE_ISSUER ?? 'http://localhost:0';
  const provider = new Provider(issuer, {
    clients: [
      {
        ...BARE_CLIENT,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: { keys: [await signingKey('ES256'), await signingKey('RS256')] },
    enabledJWA: { idTokenSigningAlgValues: ['ES256', 'RS256'] },
    features: { devInteractions: { enabled: false }, clientCredentials: { enabled: true } },
  });
  const server = http.createServer(provider.callback());
  server.keepAliveTimeout = 65_000;
  server.listen(Number(process.env.BARE_PORT ?? 0), '127.0.0.1', () => {
    process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
  });
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}

await main();
