import { isProviderPath, providerRouteOf } from '../../src/oidc/providerPaths.js';

/**
 * The provider route a path belongs to names a login's return (`/auth/:uid`) and the device
 * flow's (`/device/:uid`) by one text each; Sesame's metrics, per-IP limits and route steps
 * (routeSteps.ts) all go by it. A spelling the provider's router would take for another
 * endpoint is no provider path.
 */
describe('providerRouteOf', () => {
  it('names each endpoint by its path and a resumed authorization by its route', () => {
    expect(providerRouteOf('/token')).toBe('/token');
    expect(providerRouteOf('/auth')).toBe('/auth');
    expect(providerRouteOf('/auth/abc')).toBe('/auth/:uid');
    expect(providerRouteOf('/device/abc')).toBe('/device/:uid');
    expect(providerRouteOf('/auth/abc')).toBe(providerRouteOf('/auth/def'));
  });

  it('takes no other spelling for a provider path', () => {
    for (const path of [
      '/auth/',
      '/device/',
      '/auth/abc/',
      '/auth/abc/def',
      '/AUTH/abc',
      '/authx',
      '/x/auth/abc',
      '/',
    ]) {
      expect({ path, route: providerRouteOf(path) }).toEqual({ path, route: undefined });
      expect(isProviderPath(path)).toBe(false);
    }
  });
});
