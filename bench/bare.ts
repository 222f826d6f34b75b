/**
 * The baseline: oidc-provider as its README sets it up, with nothing of Sesame's — the
 * default in-memory adapter, ES256 and RS256 keys made with jose, a cookie signing key
 * (without one the provider signs no cookie, which no deployment should run; from 2026-12-03
 * 20:30 on, see bench/README.md), devInteractions off — and two static confidential clients:
 * one allowed client_credentials (and introspection), one for the logins (authorization
 * code + PKCE). Its interaction is the least a passkey login
 * needs, in memory: the same pages and JSON calls the bench's browsers drive on Sesame
 * (login page with a CSRF token and the passkey options, verify; sign-up: page, options,
 * verify) with the same
 * `@simplewebauthn/server` verification against the credential kept in a Map, and a grant
 * for the first-party app so there is no consent page. Run as a child process by run.ts;
 * prints `{"port": ...}` on stdout once it listens.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type AuthenticationResponseJSON,
  generateAuthenticationOptions,
  generateRegistrationOptions,
  type RegistrationResponseJSON,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
} from '@simplewebauthn/server';
import { exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';
import { BARE_CLIENT, BARE_LOGIN_CLIENT } from './httpLoad.js';

async function signingKey(alg: 'ES256' | 'RS256') {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  return { ...(await exportJWK(privateKey)), alg, use: 'sig', kid: alg.toLowerCase() };
}

interface Credential {
  id: string;
  publicKey: Uint8Array<ArrayBuffer>;
  counter: number;
  email: string;
}

/** Per interaction: its CSRF token, the pending WebAuthn challenge and (sign-up) the email. */
const ceremonies = new Map<string, { csrf: string; challenge?: string; email?: string }>();
const credentials = new Map<string, Credential>();
const RP_ID = 'localhost';

function readJson(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>);
      } catch (error) {
        reject(error);
      }
    });
    req.on('error', reject);
  });
}

function send(res: http.ServerResponse, status: number, type: string, body: string) {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
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
      {
        ...BARE_LOGIN_CLIENT,
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: { keys: [await signingKey('ES256'), await signingKey('RS256')] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    enabledJWA: { idTokenSigningAlgValues: ['ES256', 'RS256'] },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
    },
    async findAccount(_ctx, sub) {
      return { accountId: sub, claims: () => ({ sub, email: sub, email_verified: true }) };
    },
  });

  /** The interaction routes; anything else is the provider's. */
  async function interaction(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    uid: string,
    action: string,
  ) {
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== uid) return send(res, 400, 'text/plain', 'interaction mismatch');
    let ceremony = ceremonies.get(uid);
    if (!ceremony) {
      ceremony = { csrf: randomBytes(16).toString('base64url') };
      ceremonies.set(uid, ceremony);
      setTimeout(() => ceremonies.delete(uid), 600_000).unref();
    }
    if (req.method === 'GET' && action === '/signup') {
      return send(
        res,
        200,
        'text/html; charset=utf-8',
        `<!doctype html><meta name="csrf-token" content="${ceremony.csrf}"><button>Create an account</button>`,
      );
    }
    if (req.method === 'GET' && action === '') {
      // As Sesame's login page: it comes with the options of its passkey request.
      const options = await generateAuthenticationOptions({ rpID: RP_ID, userVerification: 'required' });
      ceremony.challenge = options.challenge;
      const escaped = JSON.stringify(options).replaceAll('&', '&amp;').replaceAll('"', '&quot;');
      return send(
        res,
        200,
        'text/html; charset=utf-8',
        `<!doctype html><meta name="csrf-token" content="${ceremony.csrf}"><form data-passkey-options="${escaped}"><button>Sign in with a passkey</button></form>`,
      );
    }
    if (req.method !== 'POST' || req.headers['x-csrf-token'] !== ceremony.csrf) {
      return send(res, 403, 'text/plain', 'bad request');
    }
    const body = await readJson(req);
    if (action === '/signup/options') {
      ceremony.email = String(body.email);
      const options = await generateRegistrationOptions({
        rpName: 'bare',
        rpID: RP_ID,
        userName: ceremony.email,
        attestationType: 'none',
      });
      ceremony.challenge = options.challenge;
      return send(res, 200, 'application/json', JSON.stringify(options));
    }
    const challenge = ceremony.challenge;
    ceremony.challenge = undefined;
    if (!challenge) return send(res, 400, 'text/plain', 'no challenge');
    let email: string;
    if (action === '/signup/verify') {
      const verification = await verifyRegistrationResponse({
        response: body as unknown as RegistrationResponseJSON,
        expectedChallenge: challenge,
        expectedOrigin: issuer,
        expectedRPID: RP_ID,
      });
      if (!verification.verified) return send(res, 400, 'text/plain', 'not verified');
      const { credential } = verification.registrationInfo;
      email = ceremony.email!;
      credentials.set(credential.id, {
        id: credential.id,
        publicKey: credential.publicKey,
        counter: credential.counter,
        email,
      });
    } else if (action === '/login/verify') {
      const response = body as unknown as AuthenticationResponseJSON;
      const stored = credentials.get(response.id);
      if (!stored) return send(res, 400, 'text/plain', 'unknown credential');
      const verification = await verifyAuthenticationResponse({
        response,
        expectedChallenge: challenge,
        expectedOrigin: issuer,
        expectedRPID: RP_ID,
        requireUserVerification: true,
        credential: { id: stored.id, publicKey: stored.publicKey, counter: stored.counter },
      });
      if (!verification.verified) return send(res, 400, 'text/plain', 'not verified');
      stored.counter = verification.authenticationInfo.newCounter;
      email = stored.email;
    } else {
      return send(res, 404, 'text/plain', 'not found');
    }
    // A first-party app: the grant is made here, so no consent page follows.
    const grant = new provider.Grant({ accountId: email, clientId: details.params.client_id as string });
    grant.addOIDCScope(String(details.params.scope));
    const grantId = await grant.save();
    const redirect = await provider.interactionResult(req, res, {
      login: { accountId: email },
      consent: { grantId },
    });
    ceremonies.delete(uid);
    return send(res, 200, 'application/json', JSON.stringify({ redirect }));
  }

  const callback = provider.callback();
  const server = http.createServer((req, res) => {
    const match = /^\/interaction\/([^/?]+)(\/[a-z/]*)?$/.exec(req.url ?? '');
    if (!match) return callback(req, res);
    interaction(req, res, match[1]!, match[2] ?? '').catch((error: Error) => {
      if (!res.headersSent) send(res, 400, 'text/plain', error.message);
    });
  });
  server.keepAliveTimeout = 65_000;
  server.listen(Number(process.env.BARE_PORT ?? 0), '127.0.0.1', () => {
    process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
  });
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}

await main();
