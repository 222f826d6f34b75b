// oidc-provider warns on import that Node 20 is not its preferred runtime. Sesame supports
// Node 20 on purpose (package.json engines), so the warning is known noise in test output;
// only that exact message is dropped, every other warning still shows.
const UNSUPPORTED_RUNTIME = 'oidc-provider WARNING: Unsupported runtime.';

const warn = console.warn.bind(console);
console.warn = (...args: unknown[]) => {
  if (typeof args[0] === 'string' && args[0].includes(UNSUPPORTED_RUNTIME)) return;
  warn(...args);
};
