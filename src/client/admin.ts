import { submitAfterStepUp } from './stepUp.js';

/**
 * Admin pages: "Copy" buttons put a secret, client id or link on the clipboard, so nobody
 * has to select a long random string by hand, and forms whose POST needs a passkey step-up
 * (marked data-step-up: minting a credential, issuing a one-time link, editing or deleting
 * a client or choosing its groups, changing a group, enabling, promoting, demoting or
 * deleting a user, deleting a passkey API app) ask for one first, and the other forms are
 * sent once however often their button is pressed. Loaded as a file: the CSP allows no
 * inline script.
 */

const status = document.getElementById('copy-status');

function announce(message: string): void {
  if (status) status.textContent = message;
}

/** Falls back to selecting the text when the Clipboard API is refused (e.g. not a secure context). */
function selectText(element: HTMLElement): void {
  const range = document.createRange();
  range.selectNodeContents(element);
  const selection = window.getSelection();
  selection?.removeAllRanges();
  selection?.addRange(range);
}

async function copy(button: HTMLButtonElement): Promise<void> {
  const target = document.getElementById(button.dataset.copy ?? '');
  if (!target) return;
  const text = target.textContent?.trim() ?? '';
  const label = button.textContent;
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = 'Copied';
    announce('Copied to the clipboard.');
    setTimeout(() => {
      button.textContent = label;
    }, 2000);
  } catch {
    selectText(target);
    announce('Copying was blocked: the text is selected, press Ctrl+C or ⌘C to copy it.');
  }
}

for (const button of document.querySelectorAll<HTMLButtonElement>('button[data-copy]')) {
  button.addEventListener('click', () => {
    void copy(button);
  });
}

for (const form of document.querySelectorAll<HTMLFormElement>('form[data-step-up]')) submitAfterStepUp(form);

/** How long a sent form refuses to be sent again: its answer replaces the page well before. */
const RESEND_AFTER_MS = 5000;

/**
 * The other POST forms go once: a double click sent "Create group" twice, the first created
 * it and the second's answer, which the browser shows, said a group of that name already
 * existed. A second send while the first is on its way is dropped; after a while (the
 * answer never came, or the person stopped it) the form can be sent again. (The step-up
 * forms disable their buttons while they run.)
 */
for (const form of document.querySelectorAll<HTMLFormElement>('form[method="post"]:not([data-step-up])')) {
  let sentAt = Number.NEGATIVE_INFINITY;
  form.addEventListener('submit', (event) => {
    if (event.timeStamp - sentAt < RESEND_AFTER_MS) event.preventDefault();
    else sentAt = event.timeStamp;
  });
}

// A form's single-use token (views/admin/_once.eta) is marked (a leading `~` the server drops,
// src/http/routes/adminOneShotForms.ts): a browser keeps a text field for the page in its
// history only when it differs from the value served, so going Back to a form that was sent
// puts back the token it was sent with (spent: "already done"), not the new page's, which
// minted again. A field put back is marked already.
for (const field of document.querySelectorAll<HTMLInputElement>('input[name="_once"]')) {
  if (!field.value.startsWith('~')) field.value = `~${field.value}`;
}
