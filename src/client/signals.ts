import { sendSignal } from '@simplewebauthn/browser';

/**
 * WebAuthn Signal API calls (WebAuthn L3 §5.1.10), feature-detected: where the browser
 * lacks them nothing happens. They keep password managers in step with Sesame.
 */
function supported(method: string): boolean {
  return typeof PublicKeyCredential !== 'undefined' && method in PublicKeyCredential;
}

export async function signalUnknownCredential(rpID: string, credentialId: string): Promise<void> {
  if (!supported('signalUnknownCredential')) return;
  await sendSignal({ signalName: 'unknownCredential', rpID, credentialID: credentialId }).catch(
    () => undefined,
  );
}

/** `userId` is the base64url user handle. */
export async function signalAllAcceptedCredentials(
  rpID: string,
  userId: string,
  allAcceptedCredentialIds: string[],
) {
  if (!supported('signalAllAcceptedCredentials')) return;
  await sendSignal({
    signalName: 'allAcceptedCredentials',
    rpID,
    userID: userId,
    allAcceptedCredentialIDs: allAcceptedCredentialIds,
  }).catch(() => undefined);
}

export async function signalCurrentUserDetails(
  rpID: string,
  userId: string,
  name: string,
  displayName: string,
) {
  if (!supported('signalCurrentUserDetails')) return;
  await sendSignal({
    signalName: 'currentUserDetails',
    rpID,
    userID: userId,
    userName: name,
    userDisplayName: displayName,
  }).catch(() => undefined);
}
