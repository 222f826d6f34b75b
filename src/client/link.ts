import {
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  startAuthentication,
  startRegistration,
} from '@simplewebauthn/browser';
import { ceremonyMessage, clearStatus, markRefusedFields, postJson, refocus, showStatus } from './api.js';

/**
 * The one-time link page and the first-run setup page: "Create a passkey" registers one and
 * signs the person in. The setup page also asks for the email, and has "Sign in with a
 * passkey" for the owner of an existing account, which then becomes the administrator.
 */
const form = document.getElementById('link-form') as HTMLFormElement;
// The token stays in the page's own path; requests go to the same path, never elsewhere.
const base = window.location.pathname.replace(/\/$/, '');

form.addEventListener('submit', (event) => {
  event.preventDefault();
  clearStatus();
  markRefusedFields(form);
  const submit = form.querySelector('button[type=submit]') as HTMLButtonElement;
  const name = (form.elements.namedItem('name') as HTMLInputElement | null)?.value ?? '';
  const email = form.elements.namedItem('email') as HTMLInputElement | null;
  // A recovery link's "Remove my other passkeys"; other pages have no such box.
  const removeOthers = form.elements.namedItem('removeOtherPasskeys') as HTMLInputElement | null;
  submit.disabled = true;
  (async () => {
    const optionsJSON = await postJson<PublicKeyCredentialCreationOptionsJSON>(`${base}/options`, {
      ...(email && { email: email.value }),
      ...(name && { name }),
    });
    const credential = await startRegistration({ optionsJSON });
    const { redirect } = await postJson<{ redirect: string }>(`${base}/verify`, {
      ...credential,
      ...(removeOthers && { removeOtherPasskeys: removeOthers.checked }),
    });
    window.location.assign(redirect);
  })()
    .catch((error) => {
      showStatus(ceremonyMessage(error));
      markRefusedFields(form, error);
    })
    .finally(() => {
      submit.disabled = false;
      refocus(submit);
    });
});

// The setup page only: an existing account's passkey, whose account becomes the administrator.
const signIn = document.getElementById('setup-sign-in') as HTMLButtonElement | null;
signIn?.addEventListener('click', () => {
  clearStatus();
  markRefusedFields(form);
  signIn.disabled = true;
  (async () => {
    const optionsJSON = await postJson<PublicKeyCredentialRequestOptionsJSON>(`${base}/sign-in/options`);
    const assertion = await startAuthentication({ optionsJSON });
    const { redirect } = await postJson<{ redirect: string }>(`${base}/sign-in/verify`, assertion);
    window.location.assign(redirect);
  })()
    .catch((error) => showStatus(ceremonyMessage(error)))
    .finally(() => {
      signIn.disabled = false;
      refocus(signIn);
    });
});
