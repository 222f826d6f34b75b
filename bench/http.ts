/**
 * A lean HTTP client for the load generator: node:http over keep-alive sockets, no
 * redirects followed, and a cookie jar that keeps one value per name. Every browser in the
 * benchmark talks to one host, so cookie domains never matter; paths are ignored because
 * oidc-provider never sets two cookies of one name on different paths in a flow.
 */
import http from 'node:http';

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** Keep-alive sockets shared by every browser in the process, as a pool of real browsers would have. */
export const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

/** Sends one request to `base` (http://host:port) and reads the whole answer. */
export function send(
  base: URL,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        host: base.hostname,
        port: base.port,
        method,
        path,
        agent,
        headers: body === undefined ? headers : { ...headers, 'content-length': Buffer.byteLength(body) },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

/** One browser's cookies: name -> value, as the server last set them. */
export class CookieJar {
  readonly #cookies = new Map<string, string>();

  /** Stores (or, for an expired or empty value, removes) what the reply's Set-Cookie headers say. */
  take(reply: Reply): void {
    for (const line of reply.headers['set-cookie'] ?? []) {
      const [pair = '', ...attributes] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq < 1) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expires = attributes.find((a) => a.trim().toLowerCase().startsWith('expires='));
      const expired = expires !== undefined && Date.parse(expires.split('=')[1] ?? '') < Date.now();
      if (!value || expired) this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
  }

  header(): string {
    return [...this.#cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  }
}

/** The path (and query) of a Location header, resolved against the issuer. */
export function locationPath(reply: Reply, issuer: string): string {
  const location = reply.headers.location;
  if (!location) throw new Error(`expected a redirect, got ${reply.status}: ${reply.body.slice(0, 200)}`);
  const url = new URL(location, issuer);
  return url.pathname + url.search;
}
