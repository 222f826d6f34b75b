import { issueSetupLink } from '../../src/accounts/setupLink.js';
import { startTestApp, type TestApp } from './testApp.js';

/** The path of a setup link (ISSUER/setup/<token>), which the tests' browsers request. */
export const setupPath = (url: string) => new URL(url).pathname;

/**
 * Starts a Sesame for the enclosing describe block, and empties it of users and setup links
 * before each test, so each starts from a first run. `sesame()` is the app; `newLink()` issues
 * a setup link, as a start would, and returns its URL.
 */
export function firstRunApp(): { sesame: () => TestApp; newLink: () => Promise<string> } {
  let app: TestApp | undefined;
  beforeAll(async () => {
    app = await startTestApp();
  });
  afterAll(async () => {
    await app?.stop();
  });
  beforeEach(async () => {
    await app!.db.deleteFrom('users').execute();
    await app!.db.deleteFrom('setup_links').execute();
  });
  return {
    sesame: () => app!,
    newLink: async () => (await issueSetupLink(app!.db, app!.config))!.url,
  };
}
