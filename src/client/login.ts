import {
  type AuthenticationResponseJSON,
  browserSupportsWebAuthn,
  browserSupportsWebAuthnAutofill,
  type PublicKeyCredentialRequestOptionsJSON,
  startAuthentication,
  WebAuthnAbortService,
} from '@simplewebauthn/browser';
import {
  ApiError,
  clearStatus,
  message,
  passkeysUnavailable,
  postJson,
  showCeremonyFailure,
  showStatus,
} from './api.js';
import { signalUnknownCredential } from './signals.js';

const form = document.getElementById('login-form') as HTMLFormElement;
const button = document.getElementById('passkey-button') as HTMLButtonElement;
const base = `/interaction/${form.dataset.uid}`;

/**
 * Two ceremonies can run on this page: passkey autofill (conditional mediation), started
 * on load and waiting in the username field, and the modal one the button starts. Only one
 * navigator.credentials.get() may be pending, so the button aborts the autofill request
 * (WebAuthnAbortService) and `modalRunning` stops an autofill request whose options were
 * still on their way from being started afterwards, which would abort the modal one.
 */
let modalRunning = false;

/** An autofill renewal's next try for options, after one failed (offerAutofill). */
let retry: ReturnType<typeof setTimeout> | undefined;

const requestOptions = () => postJson<PublicKeyCredentialRequestOptionsJSON>(`${base}/login/options`);

/**
 * The options the page was served with: their challenge was stored as the page was, so the
 * first autofill request needs no round trip. Used once; later requests ask for new ones.
 */
let pageOptions = readPageOptions();

function readPageOptions(): PublicKeyCredentialRequestOptionsJSON | undefined {
  const json = form.dataset.passkeyOptions;
  if (!json) return undefined;
  try {
    return JSON.parse(json) as PublicKeyCredentialRequestOptionsJSON;
  } catch {
    return undefined;
  }
}

/** Sends the signed assertion to Sesame and, once it is accepted, goes on with the OIDC flow. */
async function finishSignIn(
  optionsJSON: PublicKeyCredentialRequestOptionsJSON,
  credential: AuthenticationResponseJSON,
): Promise<void> {
  try {
    const { redirect } = await postJson<{ redirect: string }>(`${base}/login/verify`, credential);
    window.location.assign(redirect);
  } catch (error) {
    if (error instanceof ApiError && error.code === 'unknown_credential') {
      // Tell the password manager this passkey is gone, so it stops offering it.
      await signalUnknownCredential(optionsJSON.rpId ?? window.location.hostname, credential.id);
    }
    throw error;
  }
}

/**
 * How long before its options' timeout a waiting autofill request is renewed. The timeout is
 * the challenge's life on the server (PASSKEY_POLICY), which began before the page had the
 * options, and a passkey picked at the last moment still needs its round trip to Sesame.
 */
const RENEW_BEFORE_TIMEOUT_MS = 30_000;

/**
 * When to renew an autofill request made with these options, or undefined for options that
 * set no timeout. At least {@link RENEW_BEFORE_TIMEOUT_MS} apart, so however short a timeout
 * the server sets, renewals never become a loop of requests.
 */
function renewalDelay({ timeout }: PublicKeyCredentialRequestOptionsJSON): number | undefined {
  if (!timeout) return undefined;
  return Math.max(timeout - RENEW_BEFORE_TIMEOUT_MS, RENEW_BEFORE_TIMEOUT_MS);
}

/**
 * Passkey autofill in the username field: resolves when the person picks a passkey there.
 * The browser's own failures stay quiet (the person did nothing; a browser may refuse a
 * conditional request at once when it holds no passkey), and autofill is not restarted
 * from here, so a browser that keeps refusing cannot make the page loop. Only a request that
 * waited until shortly before its challenge's end is cancelled and made again with new
 * options: a person who left the page open and picks a passkey later would otherwise sign a
 * challenge Sesame no longer holds. Once the sign-in itself has expired, the new options are
 * refused (interaction_expired) and the page reloads into the expired sign-in's page, which
 * offers no autofill. A renewal's request for options that fails otherwise (a network not
 * back after sleep, the rate limit) is made again {@link RENEW_BEFORE_TIMEOUT_MS} later,
 * quietly: nobody may be at the page, and nobody asked for anything.
 */
async function offerAutofill(renewal = false): Promise<void> {
  clearTimeout(retry);
  if (modalRunning || !(await browserSupportsWebAuthnAutofill())) return;
  const served = pageOptions;
  pageOptions = undefined;
  let optionsJSON: PublicKeyCredentialRequestOptionsJSON;
  try {
    optionsJSON = served ?? (await requestOptions());
  } catch (error) {
    if (!renewal || (error instanceof ApiError && error.code === 'interaction_expired')) throw error;
    retry = setTimeout(() => {
      if (!modalRunning) offerAutofill(true).catch(showCeremonyFailure);
    }, RENEW_BEFORE_TIMEOUT_MS);
    return;
  }
  if (modalRunning) return;
  let renewing = false;
  const delay = renewalDelay(optionsJSON);
  const renewalTimer =
    delay === undefined
      ? undefined
      : setTimeout(() => {
          // The button's modal request is the one pending now: never abort it.
          if (modalRunning) return;
          renewing = true;
          WebAuthnAbortService.cancelCeremony();
        }, delay);
  let credential: AuthenticationResponseJSON;
  try {
    credential = await startAuthentication({ optionsJSON, useBrowserAutofill: true });
  } catch {
    // Cancelled for its renewal: offered again with new options.
    if (renewing) await offerAutofill(true);
    return;
  } finally {
    clearTimeout(renewalTimer);
  }
  button.disabled = true;
  try {
    await finishSignIn(optionsJSON, credential);
  } finally {
    button.disabled = false;
  }
}

function startAutofill(): void {
  offerAutofill().catch(showCeremonyFailure);
}

/** The button: a modal passkey request (the browser's own account picker). */
async function signInWithButton(): Promise<void> {
  modalRunning = true;
  button.disabled = true;
  try {
    WebAuthnAbortService.cancelCeremony();
    const optionsJSON = await requestOptions();
    const credential = await startAuthentication({ optionsJSON });
    await finishSignIn(optionsJSON, credential);
  } finally {
    modalRunning = false;
    button.disabled = false;
  }
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  if (modalRunning) return;
  clearStatus();
  signInWithButton().then(
    () => undefined,
    (error) => {
      // Leaving the page aborts the request; nothing to tell anyone.
      if ((error as Error)?.name === 'AbortError' && document.visibilityState === 'hidden') return;
      showCeremonyFailure(error);
      button.focus();
      // The autofill request was cancelled for the modal one: offer it again.
      startAutofill();
    },
  );
});

if (!browserSupportsWebAuthn()) {
  showStatus(passkeysUnavailable() ?? message('browserUnsupported'));
  button.disabled = true;
} else {
  startAutofill();
}

window.addEventListener('pagehide', () => WebAuthnAbortService.cancelCeremony());
