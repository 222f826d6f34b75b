import net from 'node:net';

/** The answer to a request sent over a raw socket: its status, headers (lower-cased) and body. */
export interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * Sends a request's head now and its body only when `finish` is called, as a slow client
 * may for up to the request timeout: the server admits the request (checks the caller) on
 * the head, and does its work once the body is in. `headers` should name no length; the
 * body's is added.
 */
export function holdBody(
  listenUrl: string,
  request: { method: string; path: string; host: string; headers: Record<string, string>; body: string },
): { finish(): Promise<RawAnswer> } {
  const { hostname, port } = new URL(listenUrl);
  const socket = net.connect(Number(port), hostname);
  const head = [
    `${request.method} ${request.path} HTTP/1.1`,
    `Host: ${request.host}`,
    'Connection: close',
    `Content-Length: ${Buffer.byteLength(request.body)}`,
    ...Object.entries(request.headers).map(([name, value]) => `${name}: ${value}`),
  ];
  socket.write(`${head.join('\r\n')}\r\n\r\n`);
  let raw = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    raw += chunk;
  });
  const closed = new Promise<void>((resolve, reject) => {
    socket.on('error', reject);
    socket.on('close', () => resolve());
  });
  return {
    async finish() {
      socket.write(request.body);
      await closed;
      const [top = '', ...rest] = raw.split('\r\n\r\n');
      const [statusLine = '', ...headerLines] = top.split('\r\n');
      const headers = Object.fromEntries(
        headerLines.map((line) => {
          const colon = line.indexOf(':');
          return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()];
        }),
      );
      return { status: Number(statusLine.split(' ')[1]), headers, body: rest.join('\r\n\r\n') };
    },
  };
}
