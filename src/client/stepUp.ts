import { type PublicKeyCredentialRequestOptionsJSON, startAuthentication } from '@simplewebauthn/browser';
import { ApiError, message, postJson, refocus, showFailure, showStatus } from './api.js';

/**
 * Step-up, shared by the account and admin pages: some requests need a passkey assertion
 * from the last five minutes, and the server answers them 403 `step_up_required` without
 * one. The assertion is one of the signed-in person's own passkeys (the server lists only
 * theirs); the server remembers it for this session.
 */
async function stepUp(): Promise<void> {
  const optionsJSON = await postJson<PublicKeyCredentialRequestOptionsJSON>('/account/step-up/options');
  const assertion = await startAuthentication({ optionsJSON });
  await postJson('/account/step-up/verify', assertion);
}

/** Runs a call that needs a recent passkey confirmation, asking for one first if the server says so. */
export async function withStepUp<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (!(error instanceof ApiError && error.code === 'step_up_required')) throw error;
    showStatus(message('stepUp'), 'ok');
    await stepUp();
    return call();
  }
}

/**
 * A plain HTML form whose POST needs a step-up: before it is sent, the server is asked
 * whether this session's step-up still counts, and the person is asked for a passkey if not.
 * The form then posts as usual, so the answer (a page showing a one-time link) replaces
 * this one and the secret never passes through script.
 */
export function submitAfterStepUp(form: HTMLFormElement): void {
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const buttons = form.querySelectorAll<HTMLButtonElement>('button[type=submit]');
    const pressed = (event as SubmitEvent).submitter ?? buttons[0];
    for (const button of buttons) button.disabled = true;
    withStepUp(() => postJson('/account/step-up/status'))
      // form.submit() does not fire this listener again.
      .then(() => form.submit())
      .catch((error) => {
        showFailure(error);
        for (const button of buttons) button.disabled = false;
        refocus(pressed);
      });
  });
}
