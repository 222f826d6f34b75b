import net from 'node:net';
import { startTestApp, type TestApp } from '../support/testApp.js';

/**
 * Sends `bytes` and never finishes the request; resolves with what the server answered and
 * how long until it closed the connection.
 */
function stall(base: string, bytes: string) {
  const { hostname, port } = new URL(base);
  const started = Date.now();
  return new Promise<{ answer: string; closedAfterMs: number }>((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => socket.write(bytes));
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      answer += chunk;
    });
    socket.on('error', reject);
    socket.on('close', () => resolve({ answer, closedAfterMs: Date.now() - started }));
  });
}

describe('a client that sends its request slowly', () => {
  let sesame: TestApp;

  beforeAll(async () => {
    sesame = await startTestApp({}, { httpTiming: { headersMs: 600, requestMs: 1_200, checkMs: 100 } });
  });

  afterAll(() => sesame.stop());

  it('gets 408 and a closed connection when its headers take too long', async () => {
    const { answer, closedAfterMs } = await stall(sesame.listenUrl, 'GET /healthz HTTP/1.1\r\nHost: x\r\n');
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(closedAfterMs).toBeGreaterThanOrEqual(500);
    expect(closedAfterMs).toBeLessThan(3_000);
  });

  it('gets 408 and a closed connection when its body takes too long', async () => {
    const { answer, closedAfterMs } = await stall(
      sesame.listenUrl,
      'POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant_type',
    );
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(closedAfterMs).toBeGreaterThanOrEqual(1_000);
    expect(closedAfterMs).toBeLessThan(4_000);
  });

  it('keeps serving a client that sends its request at once', async () => {
    expect((await fetch(`${sesame.baseUrl}/healthz`)).status).toBe(200);
  });
});
