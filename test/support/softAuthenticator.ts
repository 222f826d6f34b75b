/**
 * A software WebAuthn authenticator (plus the client/browser half of the ceremony) for tests.
 *
 * It produces real, cryptographically valid responses: ES256 keys, CBOR attestation objects with
 * "none" attestation and ASN.1 DER signatures, so the server's verification code runs unmodified.
 * Tamper knobs let tests prove that the server rejects each kind of bad response.
 */
import {
  createHash,
  createPrivateKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  sign,
} from 'node:crypto';
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';

/** Knobs shared by both ceremonies; every one makes the response deviate from a well-behaved client. */
export interface RegistrationTamper {
  /** Report this origin in clientDataJSON instead of the real one. */
  origin?: string;
  /** Report this `type` in clientDataJSON (e.g. "webauthn.get" during registration). */
  type?: string;
  /** Report this challenge in clientDataJSON instead of the server's. */
  challenge?: string;
  /** An RP ID whose SHA-256 is put in authenticator data instead of the real RP ID's hash. */
  rpIdHash?: string;
  /** `false` clears the UV flag (user not verified). */
  userVerified?: boolean;
  /** `false` clears the UP flag (user not present). */
  userPresent?: boolean;
  /** Report this signature counter instead of the stored one (e.g. to make it go backwards). */
  signCount?: number;
  /** Report the ceremony as run in a cross-origin frame (§5.8.1 `crossOrigin`, and `topOrigin` when given). */
  crossOrigin?: boolean | string;
  topOrigin?: string;
  /**
   * Registration: give the new credential this id (base64url), e.g. one already registered.
   * Assertion: use the stored credential with this id; if none is stored, forge it as the reported id.
   */
  credentialId?: string;
  /**
   * Registration: make the credential's key of this kind, labelled with this algorithm (COSE
   * alg), instead of ES256 on P-256. Only a P-256 key can sign assertions afterwards.
   */
  key?:
    | { kind: 'ec'; curve: 'P-256' | 'P-384' | 'P-521'; alg: number }
    | { kind: 'rsa'; bits: number; alg: number }
    | { kind: 'ed25519'; alg: number };
}

/** Assertion-only knobs on top of {@link RegistrationTamper}. */
export interface AssertionTamper extends RegistrationTamper {
  /** Sign different bytes, so the signature does not verify. */
  badSignature?: boolean;
}

/** Public view of a stored credential. */
export interface SoftCredentialInfo {
  /** Credential id, base64url. */
  id: string;
  rpId: string;
  /** User handle (`user.id` from the creation options), base64url. */
  userHandle: string;
  signCount: number;
}

/** A credential with its private key, JSON-safe (see {@link SoftAuthenticator.exportCredential}). */
export interface ExportedSoftCredential extends SoftCredentialInfo {
  /** PKCS#8 DER private key, base64url. */
  privateKey: string;
}

/** Options describing the emulated authenticator. */
export interface SoftAuthenticatorOptions {
  /** AAGUID reported in attested credential data; defaults to all zeros, as "none" attestation allows (§5.4.7). */
  aaguid?: string;
  /** BE flag: the credential may be synced (a multi-device passkey). */
  backupEligible?: boolean;
  /** BS flag: the credential is currently backed up. §6.1.3: BS without BE is invalid; allowed here for tests. */
  backupState?: boolean;
}

type Cbor = number | string | Uint8Array | Map<number | string, Cbor>;

/** Minimal CBOR (RFC 8949) encoder: just what attestation objects and COSE keys need. */
function cbor(value: Cbor): Buffer {
  // Initial byte: major type in the top 3 bits; argument inline (< 24) or in 1/2/4 following bytes (24/25/26).
  const head = (major: number, n: number): Buffer => {
    if (n < 24) return Buffer.of((major << 5) | n);
    const size = n < 0x100 ? 1 : n < 0x10000 ? 2 : 4;
    return Buffer.concat([Buffer.of((major << 5) | (24 + Math.log2(size))), be(n, size)]);
  };
  if (typeof value === 'number') return value >= 0 ? head(0, value) : head(1, -1 - value);
  if (typeof value === 'string')
    return Buffer.concat([head(3, Buffer.byteLength(value)), Buffer.from(value)]);
  if (value instanceof Uint8Array) return Buffer.concat([head(2, value.length), value]);
  // Map insertion order is kept; callers insert keys in CTAP2 canonical order.
  const parts = [head(5, value.size)];
  for (const [k, v] of value) parts.push(cbor(k), cbor(v));
  return Buffer.concat(parts);
}

/** `n` as an unsigned big-endian integer of `size` bytes. */
function be(n: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  b.writeUIntBE(n, 0, size);
  return b;
}
const sha256 = (data: string | Uint8Array): Buffer => createHash('sha256').update(data).digest();
const b64u = (data: Uint8Array): string => Buffer.from(data).toString('base64url');

/** RFC 9053 §7.1 COSE curve ids of the EC2 curves. */
const COSE_CURVES = { 'P-256': 1, 'P-384': 2, 'P-521': 3 } as const;

/**
 * A new key pair and its public key as a COSE_Key (RFC 9053 §7, keys in CTAP2 canonical
 * order: 1, 3, -1, -2, -3), labelled with `key.alg`: ES256 on P-256 as an authenticator
 * makes it, or a key that does not fit its label (a test of the RP's checks).
 */
function coseKeyPair(key: NonNullable<RegistrationTamper['key']>): {
  privateKey: KeyObject;
  publicKey: KeyObject;
  coseKey: Buffer;
} {
  if (key.kind === 'rsa') {
    const pair = generateKeyPairSync('rsa', { modulusLength: key.bits });
    const jwk = pair.publicKey.export({ format: 'jwk' });
    const fields: [number, Cbor][] = [
      [1, 3], // kty: RSA
      [3, key.alg],
      [-1, Buffer.from(jwk.n!, 'base64url')],
      [-2, Buffer.from(jwk.e!, 'base64url')],
    ];
    return { ...pair, coseKey: cbor(new Map(fields)) };
  }
  if (key.kind === 'ed25519') {
    const pair = generateKeyPairSync('ed25519');
    const jwk = pair.publicKey.export({ format: 'jwk' });
    const fields: [number, Cbor][] = [
      [1, 1], // kty: OKP
      [3, key.alg],
      [-1, 6], // crv: Ed25519
      [-2, Buffer.from(jwk.x!, 'base64url')],
    ];
    return { ...pair, coseKey: cbor(new Map(fields)) };
  }
  const pair = generateKeyPairSync('ec', { namedCurve: key.curve });
  const jwk = pair.publicKey.export({ format: 'jwk' });
  const fields: [number, Cbor][] = [
    [1, 2], // kty: EC2
    [3, key.alg],
    [-1, COSE_CURVES[key.curve]],
    [-2, Buffer.from(jwk.x!, 'base64url')],
    [-3, Buffer.from(jwk.y!, 'base64url')],
  ];
  return { ...pair, coseKey: cbor(new Map(fields)) };
}

/** A DOMException-like Error, named as a browser would name it (§6.3.2, §6.3.3). */
const domError = (name: string, message: string): Error => Object.assign(new Error(message), { name });

/**
 * Software authenticator holding resident (discoverable) ES256 credentials, answering
 * `navigator.credentials.create()` / `.get()` style JSON options with WebAuthn JSON responses.
 */
export class SoftAuthenticator {
  readonly #aaguid: Buffer;
  readonly #opts: SoftAuthenticatorOptions;
  #creds: (SoftCredentialInfo & { key: KeyObject })[] = [];

  constructor(opts: SoftAuthenticatorOptions = {}) {
    this.#opts = { ...opts };
    this.#aaguid = Buffer.from((opts.aaguid ?? '0'.repeat(32)).replace(/-/g, ''), 'hex');
    if (this.#aaguid.length !== 16) throw new RangeError(`invalid AAGUID: ${opts.aaguid}`);
  }

  /** Emulates `navigator.credentials.create()` with "none" attestation, creating a discoverable credential. */
  async createCredential(
    options: PublicKeyCredentialCreationOptionsJSON,
    origin: string,
    tamper: RegistrationTamper = {},
  ): Promise<RegistrationResponseJSON> {
    // §5.1.3: the RP ID defaults to the origin's effective domain.
    const rpId = options.rp.id ?? new URL(origin).hostname;
    // §6.3.2 step 2: only ES256 is implemented, so the RP must accept alg -7.
    if (!options.pubKeyCredParams.some((p) => p.type === 'public-key' && p.alg === -7)) {
      throw domError('NotSupportedError', 'no supported algorithm (ES256) in pubKeyCredParams');
    }
    // §6.3.2 step 3: refuse to create a second credential on an authenticator the RP already knows.
    const excluded = new Set(options.excludeCredentials?.map((c) => c.id));
    if (this.#creds.some((c) => c.rpId === rpId && excluded.has(c.id))) {
      throw domError('InvalidStateError', 'authenticator holds a credential listed in excludeCredentials');
    }
    const { privateKey, publicKey, coseKey } = coseKeyPair(
      tamper.key ?? { kind: 'ec', curve: 'P-256', alg: -7 },
    );
    const credId = tamper.credentialId ? Buffer.from(tamper.credentialId, 'base64url') : randomBytes(16);
    const userHandle = b64u(Buffer.from(options.user.id, 'base64url'));
    // §6.3.2: a new discoverable credential replaces one for the same RP and user handle.
    this.#creds = this.#creds.filter((c) => !(c.rpId === rpId && c.userHandle === userHandle));
    const cred = { id: b64u(credId), rpId, userHandle, signCount: 0, key: privateKey };
    this.#creds.push(cred);

    // §6.5.1 attested credential data: aaguid(16) | credentialIdLength(2, big-endian) | credentialId | key.
    const attested = Buffer.concat([this.#aaguid, be(credId.length, 2), credId, coseKey]);
    const authData = this.#authData(rpId, tamper, tamper.signCount ?? cred.signCount, attested);
    const clientDataJSON = this.#clientData('webauthn.create', options.challenge, origin, tamper);
    // §6.5.4 / §8.7: "none" attestation has fmt "none" and an empty attStmt; keys in canonical order.
    const attestationObject = cbor(
      new Map<string, Cbor>([
        ['fmt', 'none'],
        ['attStmt', new Map()],
        ['authData', authData],
      ]),
    );
    return {
      id: cred.id,
      rawId: cred.id,
      type: 'public-key',
      authenticatorAttachment: 'platform',
      // §10.1.3 credProps: a discoverable ("resident") credential was created.
      clientExtensionResults: { credProps: { rk: true } },
      response: {
        clientDataJSON: b64u(clientDataJSON),
        attestationObject: b64u(attestationObject),
        authenticatorData: b64u(authData),
        transports: ['internal'],
        publicKey: b64u(publicKey.export({ format: 'der', type: 'spki' })),
        publicKeyAlgorithm: tamper.key?.alg ?? -7,
      },
    };
  }

  /** Emulates `navigator.credentials.get()`: with `allowCredentials` or discoverable (most recent credential). */
  async getAssertion(
    options: PublicKeyCredentialRequestOptionsJSON,
    origin: string,
    tamper: AssertionTamper = {},
  ): Promise<AuthenticationResponseJSON> {
    const rpId = options.rpId ?? new URL(origin).hostname;
    const forRp = this.#creds.filter((c) => c.rpId === rpId);
    const allowed = options.allowCredentials ?? [];
    // §6.3.3 step 3: with an allow list only those credentials qualify; otherwise any discoverable one.
    const candidates = allowed.length ? forRp.filter((c) => allowed.some((a) => a.id === c.id)) : forRp;
    const chosen = forRp.find((c) => c.id === tamper.credentialId) ?? candidates.at(-1);
    if (!chosen) throw domError('NotAllowedError', `no credential for RP ${rpId}`);
    const reportedId = tamper.credentialId ?? chosen.id;

    // §6.1.1: the counter is incremented by a positive value for each assertion.
    chosen.signCount += 1;
    const authData = this.#authData(rpId, tamper, tamper.signCount ?? chosen.signCount);
    const clientDataJSON = this.#clientData('webauthn.get', options.challenge, origin, tamper);
    // §6.3.3: the signature covers authenticatorData || SHA-256(clientDataJSON), DER-encoded (§6.5.5).
    const signed = Buffer.concat([authData, sha256(clientDataJSON)]);
    // badSignature: sign one extra byte, giving a well-formed signature over the wrong data.
    const data = tamper.badSignature ? Buffer.concat([signed, Buffer.of(0)]) : signed;
    const signature = sign('sha256', data, chosen.key);
    return {
      id: reportedId,
      rawId: reportedId,
      type: 'public-key',
      authenticatorAttachment: 'platform',
      clientExtensionResults: {},
      response: {
        clientDataJSON: b64u(clientDataJSON),
        authenticatorData: b64u(authData),
        signature: b64u(signature),
        userHandle: chosen.userHandle,
      },
    };
  }

  /** Stored credentials, oldest first (no private keys). */
  credentials(): SoftCredentialInfo[] {
    return this.#creds.map(({ id, rpId, userHandle, signCount }) => ({ id, rpId, userHandle, signCount }));
  }

  /** A copy of one credential including its private key, e.g. to "sync" it to another device. */
  exportCredential(id: string): ExportedSoftCredential {
    const c = this.#creds.find((x) => x.id === id);
    if (!c) throw new Error(`no credential ${id}`);
    const { key, ...info } = c;
    return { ...info, privateKey: b64u(key.export({ format: 'der', type: 'pkcs8' })) };
  }

  /** Adds (or replaces) a credential previously exported from any instance. */
  importCredential(exported: ExportedSoftCredential): void {
    const { privateKey, ...info } = exported;
    const key = createPrivateKey({ key: Buffer.from(privateKey, 'base64url'), format: 'der', type: 'pkcs8' });
    this.#creds = [...this.#creds.filter((c) => c.id !== info.id), { ...info, key }];
  }

  /** An independent authenticator with the same options and copies of all credentials (counters diverge). */
  clone(): SoftAuthenticator {
    const copy = new SoftAuthenticator(this.#opts);
    for (const c of this.#creds) copy.importCredential(this.exportCredential(c.id));
    return copy;
  }

  /** §6.1 authenticator data: rpIdHash(32) | flags(1) | signCount(4, big-endian) | attestedCredentialData. */
  #authData(rpId: string, tamper: RegistrationTamper, signCount: number, attested = Buffer.alloc(0)): Buffer {
    // §6.1 flags: bit 0 UP, bit 2 UV, bit 3 BE, bit 4 BS, bit 6 AT (attested credential data present).
    let flags = 0;
    if (tamper.userPresent !== false) flags |= 0x01;
    if (tamper.userVerified !== false) flags |= 0x04;
    if (this.#opts.backupEligible) flags |= 0x08;
    if (this.#opts.backupState) flags |= 0x10;
    if (attested.length) flags |= 0x40;
    return Buffer.concat([sha256(tamper.rpIdHash ?? rpId), Buffer.of(flags), be(signCount, 4), attested]);
  }

  /** §5.8.1 CollectedClientData, members in the order the §5.8.1.1 serialization prescribes. */
  #clientData(type: string, challenge: string, origin: string, tamper: RegistrationTamper): Buffer {
    const data = {
      type: tamper.type ?? type,
      challenge: tamper.challenge ?? challenge,
      origin: tamper.origin ?? origin,
      crossOrigin: tamper.crossOrigin ?? false,
      ...(tamper.topOrigin !== undefined && { topOrigin: tamper.topOrigin }),
    };
    return Buffer.from(JSON.stringify(data));
  }
}
