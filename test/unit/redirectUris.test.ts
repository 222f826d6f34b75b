import {
  ClientValidationError,
  clientInputSchema,
  clientUpdateSchema,
  parseClientInput,
} from '../../src/oidc/clients.js';
import { resourceInputSchema } from '../../src/oidc/resources.js';

/** The field → message map a client input is refused with, or undefined when it is accepted. */
function refusal(input: Record<string, unknown>): Record<string, string> | undefined {
  try {
    parseClientInput(clientInputSchema, { name: 'App', ...input });
    return undefined;
  } catch (error) {
    if (error instanceof ClientValidationError) return error.fields;
    throw error;
  }
}

describe('redirect URI rules', () => {
  it.each([
    'https://app.example.com/callback',
    'http://localhost:3000/callback',
    'http://127.0.0.1:8080/cb',
    'http://[::1]/cb',
    'https://app.example.com:6001/cb',
    'com.example.app:/oauth/callback',
    'com.example.app://callback',
    // A * in the query is a character like any other, matched as it is.
    'https://app.example.com/cb?x=*',
  ])('accepts %s', (uri) => {
    expect(refusal({ redirect_uris: [uri] })).toBeUndefined();
  });

  it.each([
    ['/callback', /is not an absolute URI/],
    ['app.example.com/callback', /is not an absolute URI/],
    ['https://app.example.com/cb#token', /must not contain a fragment/],
    ['https://app.example.com/cb#', /must not contain a fragment/],
    ['http://app.example.com/cb', /must use https \(http only for localhost\)/],
    ['http://192.168.1.10/cb', /must use https/],
    ['javascript:alert(1)', /scheme that cannot be a redirect URI/],
    ['data:text/html,hi', /scheme that cannot be a redirect URI/],
    ['myapp:/callback', /reverse domain name like com\.example\.app/],
    ['https://app.example.com/a b', /must not contain spaces/],
    [
      'https://app.example.com/cb\u001b[2J',
      /^https:\/\/app\.example\.com\/cb\\u001b\[2J must not contain control characters$/,
    ],
    ['https://app.example.com/\u202ebc', /must not contain control characters/],
    [' https://app.example.com/cb', /must not contain spaces/],
    [
      'https://user:secret@app.example.com/cb',
      /^https:\/\/…@app\.example\.com\/cb must not contain a user name or password$/,
    ],
    ['https://user@app.example.com/cb', /must not contain a user name or password/],
    ['com.example.app://me@callback', /must not contain a user name or password/],
    ['https://*.example.com/cb', /a \* is not a wildcard/],
    ['https://app*.example.com/cb', /a \* is not a wildcard/],
    ['http://*:3000/cb', /a \* is not a wildcard/],
    // In the path too: `/*` would never match the URI an app sends, so no sign-in could finish.
    [
      'https://notes.example/*',
      /^https:\/\/notes\.example\/\*: redirect URIs are matched exactly, a \* is not a wildcard; list each URI$/,
    ],
    ['https://app.example.com/callback*', /a \* is not a wildcard/],
    ['http://localhost:3000/*/cb', /a \* is not a wildcard/],
    ['com.example.app:/*', /a \* is not a wildcard/],
    // Ports browsers will not navigate to (the Fetch standard's "bad ports").
    ['http://localhost:6000/cb', /^http:\/\/localhost:6000\/cb: browsers and fetch refuse port 6000 /],
    ['https://app.example.com:10080/cb', /refuse port 10080/],
  ])('refuses %s with one message on redirect_uris', (uri, message) => {
    const fields = refusal({ redirect_uris: [uri] });
    expect(fields).toEqual({ redirect_uris: expect.stringMatching(message) });
  });

  it('refuses a URI listed twice', () => {
    const uri = 'https://app.example.com/cb';
    expect(refusal({ redirect_uris: [uri, uri] })).toEqual({
      redirect_uris: `${uri} is listed twice`,
    });
  });

  it('names only the first problem of a field, and each field once', () => {
    const fields = refusal({
      redirect_uris: ['http://a.example.com/cb', 'javascript:x'],
      post_logout_redirect_uris: ['https://a.example.com/#top'],
    });
    expect(fields).toEqual({
      redirect_uris: expect.stringContaining('http://a.example.com/cb must use https'),
      post_logout_redirect_uris: expect.stringContaining('must not contain a fragment'),
    });
  });

  it('refuses a * in a post-logout redirect URI and in an update as well', () => {
    expect(
      refusal({
        redirect_uris: ['https://notes.example/cb'],
        post_logout_redirect_uris: ['https://notes.example/*'],
      }),
    ).toEqual({ post_logout_redirect_uris: expect.stringMatching(/a \* is not a wildcard; list each URI$/) });
    expect(() =>
      parseClientInput(clientUpdateSchema, { redirect_uris: ['https://notes.example/*'] }),
    ).toThrow(
      expect.objectContaining({ fields: { redirect_uris: expect.stringMatching(/a \* is not a wildcard/) } }),
    );
  });

  it('requires a redirect URI for sign-in', () => {
    expect(refusal({ redirect_uris: [] })).toEqual({ redirect_uris: 'at least one is required for sign-in' });
  });

  it('sends a native app to localhost over http, never https (RFC 8252 §7.3)', () => {
    expect(
      refusal({ redirect_uris: ['com.example.app:/cb', 'https://localhost:8443/cb'], public: true }),
    ).toEqual({ redirect_uris: expect.stringContaining('a native app reaches localhost over http') });
    expect(
      refusal({ redirect_uris: ['com.example.app:/cb', 'http://127.0.0.1/cb'], public: true }),
    ).toBeUndefined();
    // https on localhost stays fine for a web app (a dev server with a local certificate).
    expect(refusal({ redirect_uris: ['https://localhost:8443/cb'] })).toBeUndefined();
  });
});

describe('other URIs an admin registers', () => {
  // URL's parser drops tabs and newlines and percent-encodes the rest; the string as typed is
  // what would be stored, and shown on the admin's terminal and pages.
  const unwanted = ['\n', '\t', ' ', '\u001b[2J', '\u202e', '\u2066'];

  it.each(unwanted)('refuses a logo or back-channel logout URI holding %j', (text) => {
    expect(
      refusal({
        redirect_uris: ['https://app.example/cb'],
        logo_uri: `https://cdn.example/logo.png${text}x`,
      }),
    ).toEqual({
      logo_uri: 'must not contain spaces or control characters',
    });
    expect(
      refusal({
        redirect_uris: ['https://app.example/cb'],
        backchannel_logout_uri: `https://app.example/bc${text}x`,
      }),
    ).toEqual({
      backchannel_logout_uri: expect.stringMatching(/is not an absolute URI$/),
    });
  });

  it.each(unwanted)("refuses an API's identifier holding %j", (text) => {
    const parsed = resourceInputSchema.safeParse({ identifier: `https://api.example/${text}x` });
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]?.message).toMatch(/must not contain (spaces|control characters)/);
  });

  it('takes the plain ones', () => {
    expect(
      refusal({
        redirect_uris: ['https://app.example/cb'],
        logo_uri: 'https://cdn.example/logo.png',
        backchannel_logout_uri: 'https://app.example/bc',
      }),
    ).toBeUndefined();
    expect(resourceInputSchema.safeParse({ identifier: 'https://api.example/v1' }).success).toBe(true);
  });
});
