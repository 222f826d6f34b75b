import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config.js';
import { ROOT } from '../../src/paths.js';

interface Service {
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
}

const composeText = fs.readFileSync(path.join(ROOT, 'compose.yaml'), 'utf8');
const compose = parse(composeText) as { services: Record<string, Service> };
const sesame = compose.services.sesame!;
const sesameEnv = sesame.environment!;

/** The names .env.example documents (`NAME=` lines). */
const documented = fs
  .readFileSync(path.join(ROOT, '.env.example'), 'utf8')
  .split('\n')
  .map((line) => /^([A-Z][A-Z0-9_]*)=/.exec(line)?.[1])
  .filter((name): name is string => name !== undefined);

/** `${NAME...}` interpolations in compose.yaml: each name with what follows it (`:-x`, `:?msg`). */
const interpolations = [...composeText.matchAll(/\$\{([A-Z][A-Z0-9_]*)([^}]*)\}/g)].map((m) => ({
  name: m[1]!,
  modifier: m[2]!,
}));

/** A value as compose would hand it over, given these values in .env (`:-default` applied). */
function interpolate(value: string, dotEnv: Record<string, string>): string {
  return value.replace(/\$\{([A-Z][A-Z0-9_]*)([^}]*)\}/g, (_all, name: string, modifier: string) => {
    if (dotEnv[name]) return dotEnv[name];
    return modifier.startsWith(':-') ? modifier.slice(2) : '';
  });
}

describe('compose.yaml', () => {
  it('passes every setting of .env.example to Sesame (or uses it itself), so .env cannot be silently ignored', () => {
    expect(documented.length).toBeGreaterThan(10);
    const referenced = new Set(interpolations.map((i) => i.name));
    const missing = documented.filter((name) => !(name in sesameEnv) && !referenced.has(name));
    expect(missing).toEqual([]);
  });

  it('reads from .env only variables that .env.example documents', () => {
    const undocumented = interpolations.map((i) => i.name).filter((name) => !documented.includes(name));
    expect(undocumented).toEqual([]);
  });

  it('requires POSTGRES_PASSWORD and SESAME_HOST instead of defaulting them', () => {
    for (const name of ['POSTGRES_PASSWORD', 'SESAME_HOST']) {
      const uses = interpolations.filter((i) => i.name === name);
      expect(uses.length).toBeGreaterThan(0);
      for (const use of uses) expect(use.modifier).toMatch(/^:\?\s*set \w+ in \.env$/);
    }
  });

  it('puts Caddy in front: only Caddy publishes ports, Sesame trusts one proxy hop and has an https issuer', () => {
    expect(sesame.ports).toBeUndefined();
    expect(compose.services.postgres!.ports).toBeUndefined();
    expect(sesameEnv.TRUST_PROXY).toBe('1');
    expect(sesameEnv.ISSUER).toMatch(/^https:\/\/\$\{SESAME_HOST:\?/);
    const caddy = compose.services.caddy!;
    expect(caddy.ports).toEqual(expect.arrayContaining(['80:80', '443:443']));
    expect(caddy.environment?.SESAME_HOST).toMatch(/^\$\{SESAME_HOST:\?/);
    const mount = caddy.volumes!.find((v) => v.endsWith(':/etc/caddy/Caddyfile:ro'))!;
    const caddyfile = fs.readFileSync(path.join(ROOT, mount.split(':')[0]!), 'utf8');
    expect(caddyfile).toMatch(/^\{\$SESAME_HOST\} \{$/m);
    expect(caddyfile).toMatch(/^\s*reverse_proxy sesame:3000$/m);
    expect(sesameEnv.PORT).toBe('3000');
  });

  it('hands Sesame settings it accepts, with .env as the example leaves it plus the required values', () => {
    const dotEnv = { POSTGRES_PASSWORD: 'pw-123', SESAME_HOST: 'id.example.com' };
    const env = Object.fromEntries(
      Object.entries(sesameEnv).map(([name, value]) => [name, interpolate(String(value), dotEnv)]),
    );
    const config = loadConfig(env as NodeJS.ProcessEnv);
    expect(config.issuer).toBe('https://id.example.com');
    expect(config.databaseUrl).toBe('postgres://sesame:pw-123@postgres:5432/sesame');
    expect(config.trustProxy).toBeTruthy();
  });
});
