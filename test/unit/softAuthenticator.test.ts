import { createPublicKey } from 'node:crypto';
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type WebAuthnCredential,
} from '@simplewebauthn/server';
import { decodeAttestationObject, decodeCredentialPublicKey } from '@simplewebauthn/server/helpers';
import {
  type AssertionTamper,
  type RegistrationTamper,
  SoftAuthenticator,
} from '../support/softAuthenticator.js';

const rpID = 'sesame.test';
const origin = 'https://sesame.test';

async function registrationOptions(userName = 'alice', excludeCredentials: { id: string }[] = []) {
  return generateRegistrationOptions({
    rpName: 'Sesame',
    rpID,
    userName,
    attestationType: 'none',
    excludeCredentials,
    authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
  });
}

/** Registers a passkey and verifies it the way the server does, returning what the server would store. */
async function register(auth: SoftAuthenticator, userName = 'alice') {
  const options = await registrationOptions(userName);
  const response = await auth.createCredential(options, origin);
  const verification = await verifyRegistrationResponse({
    response,
    expectedChallenge: options.challenge,
    expectedOrigin: origin,
    expectedRPID: rpID,
    requireUserVerification: true,
  });
  const info = verification.registrationInfo!;
  const credential: WebAuthnCredential = {
    id: info.credential.id,
    publicKey: info.credential.publicKey,
    counter: 0,
  };
  return { options, response, verification, credential };
}

async function authenticate(
  auth: SoftAuthenticator,
  credential: WebAuthnCredential,
  opts: { allow?: string[]; tamper?: AssertionTamper } = {},
) {
  const options = await generateAuthenticationOptions({
    rpID,
    userVerification: 'required',
    allowCredentials: opts.allow?.map((id) => ({ id })),
  });
  const response = await auth.getAssertion(options, origin, opts.tamper);
  const verification = await verifyAuthenticationResponse({
    response,
    expectedChallenge: options.challenge,
    expectedOrigin: origin,
    expectedRPID: rpID,
    credential,
    requireUserVerification: true,
  });
  return { options, response, verification };
}

describe('SoftAuthenticator registration', () => {
  test('produces a "none" attestation that @simplewebauthn/server verifies', async () => {
    const auth = new SoftAuthenticator();
    const { response, verification } = await register(auth);
    expect(verification.verified).toBe(true);
    const info = verification.registrationInfo!;
    expect(info).toMatchObject({
      fmt: 'none',
      aaguid: '00000000-0000-0000-0000-000000000000',
      credentialType: 'public-key',
      credentialDeviceType: 'singleDevice',
      credentialBackedUp: false,
      userVerified: true,
      origin,
      rpID,
    });
    expect(info.credential.id).toBe(response.id);
    expect(info.credential.counter).toBe(0);
    expect(auth.credentials()).toEqual([
      { id: response.id, rpId: rpID, userHandle: expect.any(String), signCount: 0 },
    ]);
    expect(decodeAttestationObject(Buffer.from(response.response.attestationObject, 'base64url'))).toEqual(
      new Map<string, unknown>([
        ['fmt', 'none'],
        ['attStmt', new Map()],
        ['authData', expect.any(Uint8Array)],
      ]),
    );
  });

  test('encodes the same ES256 public key as a COSE key and as the SPKI publicKey field', async () => {
    const { response, verification } = await register(new SoftAuthenticator());
    // The decoder's typed view only admits named COSEKEYS; read the underlying CBOR map by label instead.
    const cose = decodeCredentialPublicKey(
      verification.registrationInfo!.credential.publicKey,
    ) as unknown as Map<number, unknown>;
    expect([cose.get(1), cose.get(3), cose.get(-1)]).toEqual([2, -7, 1]);
    const spki = Buffer.from(response.response.publicKey!, 'base64url');
    const jwk = createPublicKey({ key: spki, format: 'der', type: 'spki' }).export({ format: 'jwk' });
    expect(Buffer.from(cose.get(-2) as Uint8Array).toString('base64url')).toBe(jwk.x);
    expect(Buffer.from(cose.get(-3) as Uint8Array).toString('base64url')).toBe(jwk.y);
  });

  test('returns the client-side fields a browser sends for a platform passkey', async () => {
    const options = await registrationOptions();
    const response = await new SoftAuthenticator().createCredential(options, origin);
    expect(response).toMatchObject({
      rawId: response.id,
      type: 'public-key',
      authenticatorAttachment: 'platform',
      clientExtensionResults: { credProps: { rk: true } },
      response: { transports: ['internal'], publicKeyAlgorithm: -7, authenticatorData: expect.any(String) },
    });
  });

  test('reports the configured AAGUID and backup flags of a synced passkey', async () => {
    const aaguid = 'fbfc3007-154e-4ecc-8c0b-6e020557d7bd';
    const auth = new SoftAuthenticator({ aaguid, backupEligible: true, backupState: true });
    const info = (await register(auth)).verification.registrationInfo!;
    expect(info).toMatchObject({ aaguid, credentialDeviceType: 'multiDevice', credentialBackedUp: true });
  });

  test('refuses with InvalidStateError when it holds a credential listed in excludeCredentials', async () => {
    const auth = new SoftAuthenticator();
    const { response } = await register(auth);
    const options = await registrationOptions('alice', [{ id: response.id }]);
    await expect(auth.createCredential(options, origin)).rejects.toMatchObject({ name: 'InvalidStateError' });
    // Another device does not hold the excluded credential, so it may register.
    await expect(new SoftAuthenticator().createCredential(options, origin)).resolves.toBeDefined();
  });

  const registrationTampers: [string, RegistrationTamper, RegExp][] = [
    ['a foreign origin', { origin: 'https://evil.test' }, /origin/],
    ['a different challenge', { challenge: 'c29tZXRoaW5nLWVsc2U' }, /challenge/],
    ['the wrong clientData type', { type: 'webauthn.get' }, /type/],
    ['the rpIdHash of another RP', { rpIdHash: 'evil.test' }, /RP ID/],
    ['the UV flag cleared', { userVerified: false }, /verification/],
    ['the UP flag cleared', { userPresent: false }, /present/],
  ];
  test.each(registrationTampers)(
    'is rejected by the verifier when sent with %s',
    async (_, tamper, message) => {
      const options = await registrationOptions();
      const response = await new SoftAuthenticator().createCredential(options, origin, tamper);
      await expect(
        verifyRegistrationResponse({
          response,
          expectedChallenge: options.challenge,
          expectedOrigin: origin,
          expectedRPID: rpID,
          requireUserVerification: true,
        }),
      ).rejects.toThrow(message);
    },
  );
});

describe('SoftAuthenticator assertion', () => {
  test('verifies a discoverable assertion and increases the counter on each use', async () => {
    const auth = new SoftAuthenticator();
    const { options: reg, credential } = await register(auth);
    const first = await authenticate(auth, credential);
    expect(first.options.allowCredentials ?? []).toEqual([]);
    expect(first.verification.verified).toBe(true);
    expect(first.verification.authenticationInfo).toMatchObject({ newCounter: 1, userVerified: true });
    expect(first.response.response.userHandle).toBe(reg.user.id);
    expect(first.response.id).toBe(credential.id);

    const second = await authenticate(auth, { ...credential, counter: 1 });
    expect(second.verification.verified).toBe(true);
    expect(second.verification.authenticationInfo.newCounter).toBe(2);
    expect(auth.credentials()[0]?.signCount).toBe(2);
  });

  test('picks the most recently created credential for a discoverable request', async () => {
    const auth = new SoftAuthenticator();
    await register(auth, 'alice');
    const bob = await register(auth, 'bob');
    const { response, verification } = await authenticate(auth, bob.credential);
    expect(response.id).toBe(bob.credential.id);
    expect(response.response.userHandle).toBe(bob.options.user.id);
    expect(verification.verified).toBe(true);
  });

  test('uses the credential named in allowCredentials', async () => {
    const auth = new SoftAuthenticator();
    const alice = await register(auth, 'alice');
    await register(auth, 'bob');
    const { response, verification } = await authenticate(auth, alice.credential, {
      allow: [alice.credential.id],
    });
    expect(response.id).toBe(alice.credential.id);
    expect(verification.verified).toBe(true);
  });

  test('chooses a stored credential by tamper.credentialId and reports a forged id verbatim', async () => {
    const auth = new SoftAuthenticator();
    const alice = await register(auth, 'alice');
    await register(auth, 'bob');
    const chosen = await authenticate(auth, alice.credential, {
      tamper: { credentialId: alice.credential.id },
    });
    expect(chosen.verification.verified).toBe(true);
    const forged = await auth.getAssertion({ challenge: 'AAAA', rpId: rpID }, origin, {
      credentialId: 'Zm9yZ2Vk',
    });
    expect([forged.id, forged.rawId]).toEqual(['Zm9yZ2Vk', 'Zm9yZ2Vk']);
  });

  test('fails with NotAllowedError when no stored credential matches', async () => {
    const auth = new SoftAuthenticator();
    await register(auth);
    const allow = [{ id: 'bm90LW1pbmU', type: 'public-key' as const }];
    await expect(
      auth.getAssertion({ challenge: 'AAAA', rpId: rpID, allowCredentials: allow }, origin),
    ).rejects.toMatchObject({ name: 'NotAllowedError' });
    await expect(auth.getAssertion({ challenge: 'AAAA', rpId: 'other.test' }, origin)).rejects.toMatchObject({
      name: 'NotAllowedError',
    });
  });

  test('signs with an exported credential imported on another device, and with a clone', async () => {
    const laptop = new SoftAuthenticator();
    const { credential } = await register(laptop);
    const phone = new SoftAuthenticator();
    phone.importCredential(laptop.exportCredential(credential.id));
    expect(phone.credentials()).toEqual(laptop.credentials());
    expect((await authenticate(phone, credential)).verification.verified).toBe(true);
    expect((await authenticate(laptop.clone(), credential)).verification.verified).toBe(true);
  });

  const assertionTampers: [string, AssertionTamper, RegExp][] = [
    ['a foreign origin', { origin: 'https://evil.test' }, /origin/],
    ['a different challenge', { challenge: 'c29tZXRoaW5nLWVsc2U' }, /challenge/],
    ['the wrong clientData type', { type: 'webauthn.create' }, /type/],
    ['the rpIdHash of another RP', { rpIdHash: 'evil.test' }, /RP ID/],
    ['the UV flag cleared', { userVerified: false }, /verification/],
    ['the UP flag cleared', { userPresent: false }, /present/],
  ];
  test.each(assertionTampers)('is rejected by the verifier when sent with %s', async (_, tamper, message) => {
    const auth = new SoftAuthenticator();
    const { credential } = await register(auth);
    await expect(authenticate(auth, credential, { tamper })).rejects.toThrow(message);
  });

  test('is rejected by the verifier when its counter goes backwards from the stored one', async () => {
    const auth = new SoftAuthenticator();
    const { credential } = await register(auth);
    const stored = { ...credential, counter: 5 };
    await expect(authenticate(auth, stored, { tamper: { signCount: 3 } })).rejects.toThrow(/counter value 3/);
    // Without the knob the authenticator's own counter (2 after two uses) is also behind the stored 5.
    await expect(authenticate(auth, stored)).rejects.toThrow(/counter value 2/);
    expect((await authenticate(auth, stored, { tamper: { signCount: 6 } })).verification.verified).toBe(true);
  });

  test('produces a signature that does not verify when badSignature is set', async () => {
    const auth = new SoftAuthenticator();
    const { credential } = await register(auth);
    // verifyAuthenticationResponse reports a bad signature as verified: false rather than throwing.
    const { verification } = await authenticate(auth, credential, { tamper: { badSignature: true } });
    expect(verification.verified).toBe(false);
  });
});
