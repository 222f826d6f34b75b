import type { KoaContextWithOIDC } from 'oidc-provider';
import { renderView } from '../http/views.js';

/**
 * The person's side of the device authorization grant (RFC 8628): at ISSUER/device they type
 * (or, from verification_uri_complete, confirm) the code their TV or command-line tool shows,
 * see which app asks, and go on to the usual passkey sign-in and consent. The provider runs
 * the flow; these are its pages, in Sesame's style and under its strict CSP (the provider's
 * own forms carry an inline event handler, so only their anti-forgery token is taken over).
 */

/** The provider's anti-forgery token from the form it built for the page. */
function xsrfOf(form: string): string {
  const match = /name="xsrf" value="([^"]*)"/.exec(form);
  if (!match) throw new Error('device flow form without an xsrf token');
  return match[1]!;
}

/** Why the code the person typed led nowhere, in words for them. */
function problemWith(error: Error | undefined): string | undefined {
  switch (error?.name) {
    case undefined:
      return undefined;
    case 'NoCodeError':
      return 'Enter the code your device shows.';
    case 'NotFoundError':
      return 'That code is not valid. Check it against your device and try again.';
    case 'ExpiredError':
      return 'That code has expired. Start again on your device to get a new one.';
    case 'AlreadyUsedError':
      return 'That code was already used. Start again on your device to get a new one.';
    case 'AbortedError':
      return 'Sign-in cancelled: your device was not signed in.';
    default:
      return 'Something went wrong. Start again on your device.';
  }
}

/** Length the code field accepts: a code is 9 characters with its dash; room for spaces a person types. */
const CODE_MAX_LENGTH = 32;

export const deviceFlowPages = {
  async userCodeInputSource(ctx: KoaContextWithOIDC, form: string, _out?: unknown, error?: Error) {
    ctx.type = 'html';
    // A code that leads nowhere is a refused request; a cancelled sign-in is the person's choice.
    if (error && error.name !== 'AbortedError') ctx.status = 400;
    ctx.body = renderView('device', {
      title: 'Sign in on a device',
      action: ctx.oidc.urlFor('code_verification'),
      xsrf: xsrfOf(form),
      problem: problemWith(error),
      cancelled: error?.name === 'AbortedError',
      maxLength: CODE_MAX_LENGTH,
    });
  },

  async userCodeConfirmSource(
    ctx: KoaContextWithOIDC,
    form: string,
    client: { clientName?: string; clientId: string },
    _deviceInfo: unknown,
    userCode: string,
  ) {
    ctx.type = 'html';
    ctx.body = renderView('device-confirm', {
      title: 'Confirm the code',
      action: ctx.oidc.urlFor('code_verification'),
      xsrf: xsrfOf(form),
      userCode,
      clientName: client.clientName ?? client.clientId,
    });
  },

  async successSource(ctx: KoaContextWithOIDC) {
    ctx.type = 'html';
    ctx.body = renderView('device-done', {
      title: 'Device signed in',
      clientName: ctx.oidc.client?.clientName ?? ctx.oidc.client?.clientId,
    });
  },
};
