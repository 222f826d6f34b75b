// One `sesame` process that runs command after command (test/support/sesameProcess.ts,
// startCliSession): each command is the built CLI (dist/src/cli/main.js) evaluated afresh
// with its own argv, so a test of what many commands print and change pays for Node and the
// CLI's imports once instead of per command. Plain JS: node runs it outside Jest.
// Protocol, over the IPC channel: the parent sends { args }, this answers { code, stdout, stderr }.
import v8 from 'node:v8';

// As bin/sesame.js: a command is short-lived, so PGlite's WebAssembly is not optimised.
v8.setFlagsFromString('--liftoff-only');

const main = new URL('../../dist/src/cli/main.js', import.meta.url);
const write = { stdout: process.stdout.write, stderr: process.stderr.write };
let runs = 0;

async function run(args) {
  const out = { stdout: '', stderr: '' };
  for (const stream of ['stdout', 'stderr']) {
    process[stream].write = (chunk, encoding, callback) => {
      out[stream] += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
      (typeof encoding === 'function' ? encoding : callback)?.();
      return true;
    };
  }
  process.argv = [process.argv[0], 'sesame', ...args];
  process.exitCode = undefined;
  try {
    // A new URL is a new module instance: main.js parses process.argv again; its imports stay loaded.
    await import(`${main.href}?run=${++runs}`);
  } finally {
    process.stdout.write = write.stdout;
    process.stderr.write = write.stderr;
  }
  const code = process.exitCode ?? 0;
  process.exitCode = undefined;
  return { code, ...out };
}

// One command at a time, in the order they came.
let queue = Promise.resolve();
process.on('message', ({ args }) => {
  queue = queue.then(async () => {
    process.send(await run(args));
  });
});

// The parent closes the session by disconnecting.
process.on('disconnect', () => process.exit());
