import { submitAfterStepUp } from './stepUp.js';

/**
 * Admin pages: "Copy" buttons put a secret, client id or link on the clipboard, so nobody
 * has to select a long random string by hand, and forms whose POST needs a passkey step-up
 * (marked data-step-up: minting a credential, issuing a one-time link, editing or deleting
 * a client or choosing its groups, changing a group, enabling, promoting, demoting or
 * deleting a user, deleting a passkey API app) ask for one first. Loaded as a file: the CSP
 * allows no inline script.
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

// A form's single-use token (views/admin/_once.eta) is marked (a leading `~` the server drops,
// src/http/routes/adminOneShotForms.ts): a browser keeps a text field for the page in its
// history only when it differs from the value served, so going Back to a form that was sent
// puts back the token it was sent with (spent: "already done"), not the new page's, which
// minted again. A field put back is marked already.
for (const field of document.querySelectorAll<HTMLInputElement>('input[name="_once"]')) {
  if (!field.value.startsWith('~')) field.value = `~${field.value}`;
}
