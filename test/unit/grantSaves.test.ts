import providerRequests from 'oidc-provider/lib/helpers/als.js';
import { saveGrantIf, takeGrantSaveGuard } from '../../src/oidc/grantSaves.js';

/** The AsyncLocalStorages whose store a promise made now carries (one property each, on Node 20). */
const storagesOnEachPromise = () =>
  Object.getOwnPropertySymbols(Promise.resolve()).filter((symbol) => symbol.description === 'kResourceStore')
    .length;

/**
 * A guarded grant save (grantSaves.ts) hands its guard to the adapter's write of that grant,
 * once, within the request it runs for, without a storage of its own: on Node 20 each storage
 * that has run once adds work to every promise the process makes from then on.
 */
describe('saveGrantIf', () => {
  /** A grant whose save is the adapter's write: it takes the guard, and stores as told. */
  const grantStoring = (stored: boolean, taken: unknown[]) => ({
    async save() {
      await Promise.resolve();
      const guarded = takeGrantSaveGuard();
      taken.push(guarded?.guard, takeGrantSaveGuard());
      if (guarded) guarded.stored = stored;
    },
  });

  it('hands the guard to the first write of the save, within the request, and adds no storage to promises', async () => {
    // The provider's own storage runs for every request: it is the one every promise carries.
    providerRequests.run({}, () => undefined);
    const before = storagesOnEachPromise();
    const taken: unknown[] = [];
    const stored = await providerRequests.run({ ip: '192.0.2.1' }, () =>
      saveGrantIf(grantStoring(true, taken), { live: true }),
    );
    const refused = await providerRequests.run({ ip: '192.0.2.1' }, () =>
      saveGrantIf(grantStoring(false, taken), { copyOf: 'earlier-grant' }),
    );
    expect({ stored, refused, taken }).toEqual({
      stored: true,
      refused: false,
      taken: [{ live: true }, undefined, { copyOf: 'earlier-grant' }, undefined],
    });
    expect(storagesOnEachPromise()).toBe(before);
    // Outside the save the adapter's writes are unguarded.
    expect(providerRequests.run({}, () => takeGrantSaveGuard())).toBeUndefined();
  });

  it('refuses to run outside a request, where no write could find the guard', async () => {
    await expect(saveGrantIf(grantStoring(true, []), { live: true })).rejects.toThrow(/within a request/);
  });
});
