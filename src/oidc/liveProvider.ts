import type http from 'node:http';
import type Provider from 'oidc-provider';
import { RowReloader } from '../db/rowReloader.js';
import type { Logger } from '../logger.js';
import type { SigningJwks } from './keys.js';

type JwksWithKids = SigningJwks['jwks'];

function keyOrder(jwks: JwksWithKids): string {
  return jwks.keys.map((key) => key.kid).join(',');
}

/**
 * The provider, rebuilt whenever the signing keys change. oidc-provider fixes its JWKS when
 * it is constructed, so a new key (`sesame keys rotate`) would otherwise be published, and
 * start signing, only after a restart. This holds the current instance, reloads the keys when
 * a `signing_keys` row changes (it listens like a row cache) and when a pending key comes due,
 * and swaps in a new instance if what is published or which key signs has changed. Requests
 * in flight finish on the instance they started on; everything an instance keeps lives in
 * the database, so the next request carries on where it left off.
 */
export class LiveProvider extends RowReloader {
  #provider: Provider;
  #callback: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void> | void;
  #order: string;

  constructor(
    private readonly build: (jwks: JwksWithKids) => Provider,
    private readonly loadKeys: () => Promise<SigningJwks>,
    private readonly log: Logger,
    initial: SigningJwks,
  ) {
    super(log, 'signing keys', initial.nextChangeInMs);
    this.#provider = build(initial.jwks);
    this.#callback = this.#provider.callback();
    this.#order = keyOrder(initial.jwks);
  }

  get provider(): Provider {
    return this.#provider;
  }

  /** Serves a request with the current instance. */
  handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> | void {
    return this.#callback(req, res);
  }

  /** Reads the keys, and swaps in a new instance when what is published or signs changed. */
  protected async apply(): Promise<number | undefined> {
    const next = await this.loadKeys();
    const order = keyOrder(next.jwks);
    if (order !== this.#order) {
      const provider = this.build(next.jwks);
      this.#provider = provider;
      this.#callback = provider.callback();
      this.#order = order;
      this.log.info('signing keys changed', { kids: next.jwks.keys.map((key) => key.kid) });
    }
    return next.nextChangeInMs;
  }
}
