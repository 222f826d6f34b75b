import { cose, decodeCredentialPublicKey } from '@simplewebauthn/server/helpers';

/** The shortest RSA modulus a passkey may have: 2048 bits (RFC 8230 §6.1). */
const MIN_RSA_MODULUS_BYTES = 256;

/** The value of a big-endian unsigned integer's bytes without leading zeros. */
function withoutLeadingZeros(bytes: Uint8Array): Uint8Array {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  return bytes.subarray(start);
}

/**
 * Whether a new passkey's public key (a COSE_Key) is the key its algorithm label says:
 * ES256 on P-256 (WebAuthn L3 §5.8.5), EdDSA on Ed25519, RS256 with a modulus of at least
 * 2048 bits and an odd public exponent above 1 (RFC 8230 §2, §6.1). The verifier checks the
 * label against the algorithms offered, and a signature with whatever the key is, but not
 * that the two fit: a P-384 or Ed25519 key labelled ES256, or a 512-bit RSA key (which
 * anyone can factor), was registered and then signed in.
 */
export function keyFitsItsAlgorithm(publicKey: Uint8Array<ArrayBuffer>): boolean {
  let key: ReturnType<typeof decodeCredentialPublicKey>;
  try {
    key = decodeCredentialPublicKey(publicKey);
  } catch {
    return false;
  }
  const alg = key.get(cose.COSEKEYS.alg);
  if (alg === cose.COSEALG.ES256) {
    if (!cose.isCOSEPublicKeyEC2(key) || key.get(cose.COSEKEYS.kty) !== cose.COSEKTY.EC2) return false;
    return (
      key.get(cose.COSEKEYS.crv) === cose.COSECRV.P256 &&
      key.get(cose.COSEKEYS.x)?.length === 32 &&
      key.get(cose.COSEKEYS.y)?.length === 32
    );
  }
  if (alg === cose.COSEALG.EdDSA) {
    if (!cose.isCOSEPublicKeyOKP(key) || key.get(cose.COSEKEYS.kty) !== cose.COSEKTY.OKP) return false;
    return key.get(cose.COSEKEYS.crv) === cose.COSECRV.ED25519 && key.get(cose.COSEKEYS.x)?.length === 32;
  }
  if (alg === cose.COSEALG.RS256) {
    if (!cose.isCOSEPublicKeyRSA(key) || key.get(cose.COSEKEYS.kty) !== cose.COSEKTY.RSA) return false;
    const n = key.get(cose.COSEKEYS.n);
    const e = key.get(cose.COSEKEYS.e);
    if (!n || !e) return false;
    const exponent = withoutLeadingZeros(e);
    const odd = (exponent[exponent.length - 1]! & 1) === 1;
    const aboveOne = exponent.length > 1 || exponent[0]! > 1;
    return withoutLeadingZeros(n).length >= MIN_RSA_MODULUS_BYTES && odd && aboveOne;
  }
  return false;
}
