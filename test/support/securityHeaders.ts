/** The headers every response carries (src/http/middleware/securityHeaders.ts; HSTS only behind https). */
export const SECURITY_HEADERS = [
  'content-security-policy',
  'x-content-type-options',
  'x-frame-options',
  'referrer-policy',
  'cross-origin-opener-policy',
  'permissions-policy',
] as const;
