/** Browser helpers shared by Sesame's pages: JSON calls with the page's CSRF token, and status messages. */

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** The refused fields' messages by field name, where the server named them. */
    readonly fields: Record<string, string> = {},
  ) {
    super(message);
  }
}

let messages: Record<string, string> | undefined;

/**
 * A message in the page's language: the server puts the catalog's `client` section into the
 * page as JSON in <meta name="messages"> (locales/*.json; the CSP allows no inline script). `{{name}}`
 * placeholders take `values`. A key the page lacks shows as itself, so a gap is visible.
 */
export function message(key: string, values: Record<string, string | number> = {}): string {
  messages ??= JSON.parse(
    document.querySelector<HTMLMetaElement>('meta[name="messages"]')?.content || '{}',
  ) as Record<string, string>;
  const text = messages[key] ?? key;
  return text.replace(/\{\{(\w+)\}\}/g, (placeholder, name: string) => String(values[name] ?? placeholder));
}

function csrfToken(): string {
  return document.querySelector<HTMLMetaElement>('meta[name="csrf-token"]')?.content ?? '';
}

/**
 * POSTs JSON to a Sesame endpoint and returns its JSON answer, or throws ApiError with the
 * server's message. The call asks for the page's own language: the server chose it for the page
 * (from the app's ui_locales, say), and its refusals are then worded alike, even those it sends
 * before it knows what chose the page.
 */
export async function postJson<T>(url: string, body: unknown = {}, method = 'POST'): Promise<T> {
  const response = await fetch(url, {
    method,
    headers: {
      'content-type': 'application/json',
      accept: 'application/json',
      'accept-language': document.documentElement.lang,
      'x-csrf-token': csrfToken(),
    },
    credentials: 'same-origin',
    body: JSON.stringify(body),
  });
  const data = (await response.json().catch(() => ({}))) as {
    error?: string;
    error_description?: string;
    fields?: Record<string, string>;
  };
  if (!response.ok) {
    throw new ApiError(
      response.status,
      data.error ?? 'error',
      data.error_description ?? message('requestFailed', { status: response.status }),
      data.fields,
    );
  }
  return data as T;
}

/** Shows a message in the page's status box (role=alert, so screen readers announce it). */
export function showStatus(message: string, kind: 'error' | 'ok' = 'error'): void {
  const box = document.getElementById('status');
  if (!box) return;
  box.textContent = message;
  box.className = kind === 'ok' ? 'status ok' : 'status';
  box.hidden = false;
}

/**
 * Hides the status box's message as the next attempt starts. A box that was shown keeps its
 * place, unseen (and out of the accessibility tree): it sits above the form, and removed, it
 * moved the form up under the pointer, so the second click of a double click on the button
 * landed on what was below it (the login page's "Create an account" link).
 */
export function clearStatus(): void {
  const box = document.getElementById('status');
  if (box && !box.hidden) box.classList.add('cleared');
}

/** The status box's id, which describes a field it shows the refusal of. */
const STATUS = 'status';

/**
 * Marks the fields of `form` that `error` refused (its `fields`, by name) as invalid and
 * described by the status box that shows why, and moves the focus to the first of them: the
 * submit button was disabled while the request ran, which left the focus nowhere. The marks
 * of an earlier refusal go first (call it with no error once the form is sent again).
 */
export function markRefusedFields(form: HTMLFormElement, error?: unknown): void {
  const fields = [...form.elements].filter(
    (element): element is HTMLInputElement => element instanceof HTMLInputElement && element.name !== '',
  );
  for (const field of fields) {
    if (!field.hasAttribute('aria-invalid')) continue;
    field.removeAttribute('aria-invalid');
    const described = (field.getAttribute('aria-describedby') ?? '')
      .split(' ')
      .filter((id) => id && id !== STATUS);
    if (described.length > 0) field.setAttribute('aria-describedby', described.join(' '));
    else field.removeAttribute('aria-describedby');
  }
  if (!(error instanceof ApiError)) return;
  const refused = fields.filter((field) => field.name in error.fields);
  for (const field of refused) {
    field.setAttribute('aria-invalid', 'true');
    const described = field.getAttribute('aria-describedby');
    field.setAttribute('aria-describedby', described ? `${described} ${STATUS}` : STATUS);
  }
  refused[0]?.focus();
}

/**
 * Gives a button enabled again after a ceremony the focus back, unless something took it
 * meanwhile: disabling the focused button dropped the focus to the page's body, and enabling
 * it again does not bring it back, so a keyboard or screen-reader user would be thrown to the
 * top of the page after a cancelled passkey prompt. A refused field that took it keeps it.
 */
export function refocus(button: HTMLElement | null | undefined): void {
  if (document.activeElement === null || document.activeElement === document.body) button?.focus();
}

/**
 * Shows why a ceremony did not finish; for a sign-in that expired meanwhile, reloads the page
 * instead, whose error page then links back to the app while Sesame knows which.
 */
export function showCeremonyFailure(error: unknown): void {
  if (error instanceof ApiError && error.code === 'interaction_expired') window.location.reload();
  else showStatus(ceremonyMessage(error));
}

/**
 * Why no passkey can work on this page, whatever the person tries, or undefined. Browsers offer
 * WebAuthn only in a secure context (https, or http on localhost): on http elsewhere (an ISSUER
 * served without TLS) it is missing, and the ceremony's plain Error said "try again".
 */
export function passkeysUnavailable(): string | undefined {
  if (!window.isSecureContext) return message('insecureConnection', { origin: window.location.origin });
  if (typeof PublicKeyCredential === 'undefined') return message('browserUnsupported');
  return undefined;
}

/** Words for a ceremony that did not finish, from the WebAuthn DOMException names (WebAuthn L3 §5.1.3, §5.1.4). */
export function ceremonyMessage(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  const unavailable = passkeysUnavailable();
  if (unavailable) return unavailable;
  const name = (error as { name?: string })?.name;
  if (name === 'NotAllowedError' || name === 'AbortError') return message('cancelled');
  if (name === 'InvalidStateError') return message('alreadyRegistered');
  if (name === 'SecurityError') return message('insecureAddress');
  if (name === 'NotSupportedError') return message('unsupported');
  return message('failed');
}

/**
 * Shows why a call failed. A 401 means the session ended while the page was open (signed
 * out elsewhere, or its time ran out): the message then links to sign in again and come
 * back to this page.
 */
export function showFailure(error: unknown): void {
  if (!(error instanceof ApiError && error.status === 401)) {
    showStatus(ceremonyMessage(error));
    return;
  }
  showStatus(message('sessionEnded'));
  const link = document.createElement('a');
  const here = `${window.location.pathname}${window.location.search}`;
  link.href = `/account/login?return_to=${encodeURIComponent(here)}`;
  link.textContent = message('signInAgain');
  document.getElementById('status')?.append(' ', link);
}
