import http from 'node:http';

/** An answer read in full: status, headers, the body as text. */
export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/**
 * One HTTP request through node:http, which sends any method (fetch refuses TRACE and
 * CONNECT) and a body of any content type, and never follows a redirect. With `agent`,
 * on that agent's connections (a keep-alive agent sends requests one after another on one).
 */
export function rawRequest(
  url: string,
  init: {
    method?: string;
    headers?: Record<string, string>;
    body?: string | Buffer;
    agent?: http.Agent;
  } = {},
): Promise<RawResponse> {
  // node:http sends a DELETE or OPTIONS body with neither Content-Length nor chunking: the
  // server would read the body as the next request. The length is always stated.
  const headers = { ...init.headers };
  if (init.body !== undefined) headers['content-length'] = String(Buffer.byteLength(init.body));
  return new Promise((resolve, reject) => {
    const request = http.request(
      url,
      { method: init.method ?? 'GET', headers, agent: init.agent },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({
            status: response.statusCode!,
            headers: response.headers,
            text: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(init.body);
  });
}
