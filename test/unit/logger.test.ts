import { createLogger, redactText, redactUrl } from '../../src/logger.js';
import { isClientOrigin } from '../../src/oidc/provider.js';

const TOKEN = 'Qk9vRzVhM2ZfV2Jx-aGVsbG8td29ybGQtdGhpcy1pcw';

describe('redactUrl', () => {
  it.each([
    [`/link/${TOKEN}`, '/link/[redacted]'],
    [`/link/${TOKEN}/verify`, '/link/[redacted]/verify'],
    // Even a malformed token (too short to look generated) is a link's secret.
    ['/link/abc/options', '/link/[redacted]/options'],
    [`https://sesame.example/link/${TOKEN}?x=1`, 'https://sesame.example/link/[redacted]?x=[redacted]'],
  ])('cuts the token out of the one-time link %s', (url, expected) => {
    expect(redactUrl(url)).toBe(expected);
  });

  it('cuts out any path segment shaped like a generated secret, and keeps short ids', () => {
    expect(redactUrl(`/api/keys/spk_${TOKEN}`)).toBe('/api/keys/[redacted]');
    expect(redactUrl('/interaction/Xb2m9kq3LpT0aZ8yW1nRc/login/verify')).toBe(
      '/interaction/Xb2m9kq3LpT0aZ8yW1nRc/login/verify',
    );
  });

  it('cuts out a segment that holds such a secret with more around it or percent-encoded, as a mail client may send a link', () => {
    for (const segment of [`${TOKEN})`, `${TOKEN}%3E`, `${TOKEN};`, TOKEN.replace('-', '%2D'), `(${TOKEN}`])
      expect(redactUrl(`/verify/${segment}`)).toBe('/verify/[redacted]');
    expect(redactUrl(`/account/login?return_to=%2Fverify%2F${TOKEN}%29`)).toBe(
      '/account/login?return_to=%2Fverify%2F%5Bredacted%5D',
    );
    expect(redactUrl('/verify/not-a-token%29')).toBe('/verify/not-a-token%29');
    // An encoded token beside a `%` that does not decode (a cut UTF-8 sequence, a lone `%`).
    const encoded = TOKEN.replace('-', '%2D');
    for (const segment of [`${encoded}%E2%80`, `${encoded}%`, `%ZZ${encoded}`])
      expect(redactUrl(`/verify/${segment}`)).toBe('/verify/[redacted]');
  });

  it('replaces every query value except the few that only say what was asked for', () => {
    const jwt = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl';
    expect(
      redactUrl(
        `/session/end?id_token_hint=${jwt}&post_logout_redirect_uri=https%3A%2F%2Fapp.example%2F&state=s3cr3t`,
      ),
    ).toBe(
      '/session/end?id_token_hint=[redacted]&post_logout_redirect_uri=https%3A%2F%2Fapp.example%2F&state=[redacted]',
    );
    expect(
      redactUrl('/auth?client_id=notes&scope=openid&code_challenge=abc&nonce=n&login_hint=a%40b.c'),
    ).toBe(
      '/auth?client_id=notes&scope=openid&code_challenge=[redacted]&nonce=[redacted]&login_hint=[redacted]',
    );
    expect(redactUrl('/callback?code=xyz&refresh_token=r&access_token=a&flag')).toBe(
      '/callback?code=[redacted]&refresh_token=[redacted]&access_token=[redacted]&flag',
    );
  });

  it("logs return_to's path with that path's own redaction: a welcome mail's /verify/<token> opened signed out", () => {
    expect(redactUrl(`/account/login?return_to=%2Fverify%2F${TOKEN}`)).toBe(
      '/account/login?return_to=%2Fverify%2F%5Bredacted%5D',
    );
    expect(
      redactUrl(`/account/login?return_to=${encodeURIComponent(`/link/abc?x=${TOKEN}&scope=openid`)}`),
    ).toBe(`/account/login?return_to=${encodeURIComponent('/link/[redacted]?x=[redacted]&scope=openid')}`);
    expect(redactUrl('/account/login?return_to=%2Fadmin%2Fclients')).toBe(
      '/account/login?return_to=%2Fadmin%2Fclients',
    );
    expect(redactUrl(`/account/login?return_to=%E0%A4%A${TOKEN}`)).toBe(
      '/account/login?return_to=[redacted]',
    );
  });
});

describe('redactText', () => {
  const JWT =
    'eyJhbGciOiJFUzI1NiIsInR5cCI6ImxvZ291dCtqd3QifQ.eyJzdWIiOiJhYmMiLCJzaWQiOiJ4eXoifQ.MEUCIQDk3p-r_9sG';

  it.each([
    [
      `550 5.7.1 message rejected, URL https://id.example/link/${TOKEN}/verify listed`,
      '550 5.7.1 message rejected, URL https://id.example/link/[redacted]/verify listed',
    ],
    // A link whose token is too short to look generated is still a link's secret (what
    // follows it up to a space, `/` or `?`, here a `>`, goes with it).
    [
      '554 spam: <https://id.example/link/abc> listed',
      '554 spam: <https://id.example/link/[redacted] listed',
    ],
    [
      `550 5.7.1 blocked https://id.example/verify/${TOKEN}).`,
      '550 5.7.1 blocked https://id.example/verify/[redacted]).',
    ],
    [`552 bare token ${TOKEN} in body`, '552 bare token [redacted] in body'],
    // Quoted as the mail carried it: a quoted-printable soft line break inside the token.
    [
      `550 5.7.1 URL https://id.example/verify/${TOKEN.slice(0, 17)}=\r\n${TOKEN.slice(17)} listed`,
      '550 5.7.1 URL https://id.example/verify/[redacted] listed',
    ],
    // Wrapped onto the reply's next line.
    [
      `550-5.7.1 URL https://id.example/link/${TOKEN.slice(0, 9)}\r\n550-5.7.1 ${TOKEN.slice(9)}/verify\r\n550 5.7.1 refused`,
      '550-5.7.1 URL https://id.example/link/[redacted]/verify\r\n550 5.7.1 refused',
    ],
    [
      'Response code 400 (logout_token=eyJhbGciOiJub25lIn0.eyJzdWIiOiIxMjM0NTY3ODkwIn0.)',
      'Response code 400 (logout_token=[redacted])',
    ],
    [
      `Response code 400 (invalid logout_token=${JWT})`,
      'Response code 400 (invalid logout_token=[redacted])',
    ],
    [
      `550 URL https://id.example/verify/${TOKEN.replace('-', '%2D')}%3E refused`,
      '550 URL https://id.example/verify/[redacted] refused',
    ],
  ])('cuts the secret out of %s, and keeps the rest', (text, expected) => {
    expect(redactText(text)).toBe(expected);
  });

  it('leaves ordinary mail server replies and errors as they are', () => {
    for (const text of [
      '550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown in virtual mailbox table',
      '421 4.3.2 Service not available, closing transmission channel',
      'Message failed: 451 4.7.1 Greylisted, see https://postgrey.example/help/example.com',
      'connect ECONNREFUSED 127.0.0.1:25',
      'Queued mail for delivery <3f2a9c1e-8b7d-4e6f-a1b2-c3d4e5f60718@acme.test>',
      'line one\r\nline two',
      // Long host names, whose pieces are short: what an admin needs to find whose server refused.
      '550 5.7.708 Service unavailable [BN1NAM02FT012.eop-nam02.prod.protection.outlook.com 2026-12-07]',
      'fetch failed: getaddrinfo ENOTFOUND backchannel.internal.corp-services.example.com',
      '550 5.1.1 <someone@mail.some-very-long-company-name.example.com>: rejected',
    ])
      expect(redactText(text)).toBe(text);
  });
});

describe('createLogger', () => {
  function capture(level: 'debug' | 'info' | 'warn' | 'error' | 'silent' = 'debug') {
    const lines: string[] = [];
    return { log: createLogger(level, (line) => lines.push(line)), lines };
  }

  it('redacts url and path fields, and link paths quoted in any other string', () => {
    const { log, lines } = capture();
    log.error('request failed', {
      method: 'POST',
      path: `/link/${TOKEN}/verify`,
      url: `/session/end?id_token_hint=${TOKEN}`,
      error: `Error: boom at /link/${TOKEN}\n    at handler (links.ts:1:1)`,
      user: 'a-user-id',
    });
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain(TOKEN);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      level: 'error',
      msg: 'request failed',
      path: '/link/[redacted]/verify',
      url: '/session/end?id_token_hint=[redacted]',
      error: 'Error: boom at /link/[redacted]\n    at handler (links.ts:1:1)',
      user: 'a-user-id',
    });
  });

  it('writes nothing below its level', () => {
    const { log, lines } = capture('warn');
    log.info('request', { url: '/' });
    log.debug('detail');
    log.warn('careful');
    expect(lines.map((line) => JSON.parse(line).msg)).toEqual(['careful']);
  });
});

describe('CORS origins of a client (isClientOrigin)', () => {
  it('never accepts "Origin: null", though a custom-scheme redirect URI has the origin "null"', () => {
    const nativeRedirect = 'com.example.notes:/oauth/callback';
    expect(URL.parse(nativeRedirect)!.origin).toBe('null');
    expect(isClientOrigin('null', [nativeRedirect])).toBe(false);
    expect(isClientOrigin('null', ['https://notes.example/callback', nativeRedirect])).toBe(false);
  });

  it("accepts exactly the origin of one of the client's http(s) redirect URIs", () => {
    const uris = ['https://notes.example/callback', 'http://localhost:5173/cb'];
    expect(isClientOrigin('https://notes.example', uris)).toBe(true);
    expect(isClientOrigin('http://localhost:5173', uris)).toBe(true);
    expect(isClientOrigin('https://notes.example:8443', uris)).toBe(false);
    expect(isClientOrigin('http://notes.example', uris)).toBe(false);
    expect(isClientOrigin('https://evil.example', uris)).toBe(false);
  });
});
