import { authenticationResponseSchema, issueMessage } from '../../src/http/schemas.js';
import { translatorFor } from '../../src/i18n/catalog.js';

describe("a schema's catalog message for a refused field", () => {
  const assertion = {
    id: 'AAAA',
    rawId: 'AAAA',
    type: 'public-key',
    clientExtensionResults: {},
    response: { clientDataJSON: 'AAAA', authenticatorData: 'AAAA', signature: 'not base64!' },
  };

  it('is worded from the catalog even when its key has digits (validation.base64url)', () => {
    const [issue] = authenticationResponseSchema.safeParse(assertion).error!.issues;
    expect(issue!.path).toEqual(['response', 'signature']);
    expect(issueMessage(issue!)).toBe('must be base64url');
    expect(issueMessage(issue!, translatorFor('de'))).toBe('muss base64url-kodiert sein');
  });
});
