import { type PublicKeyCredentialCreationOptionsJSON, startRegistration } from '@simplewebauthn/browser';
import { clearStatus, markRefusedFields, postJson, refocus, showCeremonyFailure } from './api.js';

const form = document.getElementById('signup-form') as HTMLFormElement;
const base = `/interaction/${form.dataset.uid}`;

form.addEventListener('submit', (event) => {
  event.preventDefault();
  clearStatus();
  markRefusedFields(form);
  const data = new FormData(form);
  const submit = form.querySelector('button[type=submit]') as HTMLButtonElement;
  submit.disabled = true;
  (async () => {
    const optionsJSON = await postJson<PublicKeyCredentialCreationOptionsJSON>(`${base}/signup/options`, {
      email: String(data.get('email') ?? ''),
      name: String(data.get('name') ?? ''),
    });
    const credential = await startRegistration({ optionsJSON });
    const { redirect } = await postJson<{ redirect: string }>(`${base}/signup/verify`, credential);
    window.location.assign(redirect);
  })()
    .catch((error) => {
      showCeremonyFailure(error);
      markRefusedFields(form, error);
    })
    .finally(() => {
      submit.disabled = false;
      refocus(submit);
    });
});
