import { type PublicKeyCredentialCreationOptionsJSON, startRegistration } from '@simplewebauthn/browser';
import { clearStatus, markRefusedFields, message, postJson, showFailure, showStatus } from './api.js';
import { signalAllAcceptedCredentials, signalCurrentUserDetails } from './signals.js';
import { withStepUp } from './stepUp.js';

/** The account page: profile, passkeys (with step-up for add and delete), connected apps. */
const root = document.getElementById('account') as HTMLElement;
const rpId = root.dataset.rpId ?? window.location.hostname;
const userHandle = root.dataset.userHandle ?? '';
const email = root.dataset.email ?? '';

/**
 * Runs `task` with `button` disabled; a refusal shows, and marks the fields of `form` it names.
 * Disabling the focused button drops the focus to the page's body, and re-enabling it does not
 * bring it back: a keyboard or screen-reader user was then thrown to the top of the page after
 * every press. The focus returns to the button, or, where the task hid or removed it (a rename
 * form closed, a passkey deleted), to `fallback`, unless something else took it meanwhile.
 */
function busy(
  button: HTMLButtonElement,
  task: () => Promise<void>,
  form?: HTMLFormElement,
  fallback: () => HTMLElement = () => addButton,
): void {
  clearStatus();
  if (form) markRefusedFields(form);
  button.disabled = true;
  task()
    .catch((error) => {
      showFailure(error);
      if (form) markRefusedFields(form, error);
    })
    .finally(() => {
      button.disabled = false;
      if (document.activeElement !== null && document.activeElement !== document.body) return;
      // An element that is hidden or out of the document has no box to take the focus.
      (button.getClientRects().length > 0 ? button : fallback()).focus();
    });
}

const profileForm = document.getElementById('profile-form') as HTMLFormElement;
profileForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const input = profileForm.elements.namedItem('name') as HTMLInputElement;
  busy(
    profileForm.querySelector('button[type=submit]') as HTMLButtonElement,
    async () => {
      const saved = await postJson<{ name: string | null }>('/account/profile', { name: input.value });
      input.value = saved.name ?? '';
      showStatus(message('nameSaved'), 'ok');
      // Password managers show the new name next to the passkey (WebAuthn L3 §5.1.10.3); with
      // none, the address, as the passkey was made with.
      await signalCurrentUserDetails(rpId, userHandle, email, saved.name ?? email);
    },
    profileForm,
  );
});

const addButton = document.getElementById('add-passkey') as HTMLButtonElement;
addButton.addEventListener('click', () =>
  busy(addButton, async () => {
    const optionsJSON = await withStepUp(() =>
      postJson<PublicKeyCredentialCreationOptionsJSON>('/account/passkeys/options'),
    );
    const credential = await startRegistration({ optionsJSON });
    await withStepUp(() => postJson('/account/passkeys/verify', credential));
    window.location.reload();
  }),
);

for (const item of document.querySelectorAll<HTMLLIElement>('li.passkey')) {
  const id = item.dataset.credentialId!;
  const nameLabel = item.querySelector('.passkey-name') as HTMLElement;
  const renameButton = item.querySelector('.rename-button') as HTMLButtonElement;
  const renameForm = item.querySelector('.rename-form') as HTMLFormElement;
  const deleteButton = item.querySelector('.delete-button') as HTMLButtonElement;

  renameButton.addEventListener('click', () => {
    renameForm.hidden = !renameForm.hidden;
    if (!renameForm.hidden) (renameForm.elements.namedItem('name') as HTMLInputElement).focus();
  });

  renameForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const input = renameForm.elements.namedItem('name') as HTMLInputElement;
    busy(
      renameForm.querySelector('button[type=submit]') as HTMLButtonElement,
      async () => {
        const saved = await postJson<{ name: string }>(`/account/passkeys/${id}/rename`, {
          name: input.value,
        });
        nameLabel.textContent = saved.name;
        renameForm.hidden = true;
        showStatus(message('passkeyRenamed'), 'ok');
      },
      renameForm,
      () => renameButton,
    );
  });

  deleteButton.addEventListener('click', () => {
    if (!window.confirm(message('confirmDelete', { name: nameLabel.textContent ?? '' }))) return;
    busy(deleteButton, async () => {
      const { remaining, count } = await withStepUp(() =>
        postJson<{ remaining: string[]; count: string }>(`/account/passkeys/${id}/delete`),
      );
      // Tell the password manager which passkeys still work, so it hides the deleted one.
      await signalAllAcceptedCredentials(rpId, userHandle, remaining);
      item.remove();
      const counted = document.getElementById('passkey-count');
      if (counted) counted.textContent = count;
      showStatus(message('passkeyDeleted'), 'ok');
    });
  });
}
