import { CookieJar } from 'tough-cookie';

/** A response as a test sees it: status, headers, the text body, and the URL it came from. */
export interface PageResponse {
  status: number;
  url: string;
  headers: Headers;
  text: string;
  json<T = Record<string, unknown>>(): T;
  /** The page's CSRF token, from its <meta name="csrf-token">. */
  csrf(): string;
  /** The value of the page's first input named `name` (a hidden field, e.g. an admin form's `_once`). */
  field(name: string): string;
  location(): string | undefined;
}

/**
 * A browser without a screen: keeps cookies per path like a real one, sends Origin on
 * unsafe requests, and follows redirects on request, stopping where a test asks (at an
 * RP's callback). It lets Jest drive Sesame's pages over real HTTP.
 *
 * `behindProxy` plays a TLS-terminating reverse proxy: requests to `origin` (an https
 * ISSUER) go to `connectTo` over plain http with X-Forwarded-Proto and -Host, while the
 * cookie jar sees the https URL, so it keeps and sends Secure cookies as a browser would.
 */
export class BrowserSession {
  readonly jar = new CookieJar();
  /** Every Set-Cookie header this browser received, in order. */
  readonly setCookieHeaders: string[] = [];
  /** Headers sent with every request, e.g. the Accept-Language of this browser. */
  readonly headers: Record<string, string> = {};

  constructor(
    readonly origin: string,
    readonly behindProxy?: { connectTo: string },
  ) {}

  async request(
    url: string,
    init: {
      method?: string;
      json?: unknown;
      form?: Record<string, string>;
      /** A multipart/form-data body (file uploads); fetch writes its content type and boundary. */
      multipart?: FormData;
      body?: string;
      headers?: Record<string, string>;
    } = {},
  ): Promise<PageResponse> {
    const absolute = new URL(url, this.origin).toString();
    const method =
      init.method ??
      (init.json !== undefined || init.form || init.multipart || init.body !== undefined ? 'POST' : 'GET');
    const headers: Record<string, string> = {
      accept: 'text/html,application/json',
      ...this.headers,
      ...init.headers,
    };
    let body: string | FormData | undefined = init.multipart ?? init.body;
    if (init.json !== undefined) {
      headers['content-type'] ??= 'application/json';
      body = JSON.stringify(init.json);
    } else if (init.form) {
      headers['content-type'] ??= 'application/x-www-form-urlencoded';
      body = new URLSearchParams(init.form).toString();
    }
    if (method !== 'GET' && method !== 'HEAD') headers.origin ??= this.origin;
    const cookie = await this.jar.getCookieString(absolute);
    if (cookie) headers.cookie = cookie;
    let target = absolute;
    const parsed = new URL(absolute);
    if (this.behindProxy && parsed.origin === this.origin) {
      target = `${this.behindProxy.connectTo}${parsed.pathname}${parsed.search}`;
      headers['x-forwarded-proto'] = parsed.protocol.slice(0, -1);
      headers['x-forwarded-host'] = parsed.host;
    }
    const response = await fetch(target, { method, headers, body, redirect: 'manual' });
    for (const setCookie of response.headers.getSetCookie()) {
      this.setCookieHeaders.push(setCookie);
      await this.jar.setCookie(setCookie, absolute, { ignoreError: true });
    }
    const text = await response.text();
    return {
      status: response.status,
      url: absolute,
      headers: response.headers,
      text,
      json: <T>() => JSON.parse(text) as T,
      csrf: () => {
        const match = /<meta name="csrf-token" content="([^"]+)"/.exec(text);
        if (!match)
          throw new Error(`no CSRF token on ${absolute} (status ${response.status}): ${text.slice(0, 300)}`);
        return match[1]!;
      },
      field: (name: string) => {
        const match = new RegExp(`<input [^>]*name="${name}" value="([^"]*)"`).exec(text);
        if (!match)
          throw new Error(
            `no field ${name} on ${absolute} (status ${response.status}): ${text.slice(0, 300)}`,
          );
        return match[1]!;
      },
      location: () => {
        const location = response.headers.get('location');
        return location ? new URL(location, absolute).toString() : undefined;
      },
    };
  }

  /**
   * GETs a URL and follows redirects. Stops at the first URL for which `stopAt` is true
   * (returned without being requested), or at the first non-redirect response.
   */
  async follow(
    url: string,
    stopAt: (url: string) => boolean = () => false,
  ): Promise<PageResponse | { stoppedAt: string }> {
    let next = new URL(url, this.origin).toString();
    for (let hops = 0; hops < 15; hops++) {
      if (stopAt(next)) return { stoppedAt: next };
      const response = await this.request(next);
      const location = response.location();
      if (response.status >= 300 && response.status < 400 && location) {
        next = location;
        continue;
      }
      return response;
    }
    throw new Error(`too many redirects from ${url}`);
  }

  /** POSTs JSON with the page's CSRF token, as Sesame's browser code does. */
  postJson(url: string, csrf: string, json: unknown): Promise<PageResponse> {
    return this.request(url, { json, headers: { 'x-csrf-token': csrf, accept: 'application/json' } });
  }
}

/** Narrows `follow`'s answer to a page. */
export function asPage(result: PageResponse | { stoppedAt: string }): PageResponse {
  if ('stoppedAt' in result) throw new Error(`expected a page, stopped at ${result.stoppedAt}`);
  return result;
}

/** Narrows `follow`'s answer to the URL it stopped at. */
export function stoppedAt(result: PageResponse | { stoppedAt: string }): string {
  if (!('stoppedAt' in result)) {
    throw new Error(
      `expected a redirect to the app, got ${result.status} at ${result.url}: ${result.text.slice(0, 500)}`,
    );
  }
  return result.stoppedAt;
}
