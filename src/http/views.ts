import { Eta } from 'eta';
import { VIEWS_DIR } from '../paths.js';

// autoEscape: every <%= %> is HTML-escaped; nothing a user typed reaches a page raw.
const eta = new Eta({ views: VIEWS_DIR, autoEscape: true, cache: true, autoTrim: false });

/** Data every page's layout reads. */
export interface PageData {
  title: string;
  /** Token for forms and fetch calls on the page (see http/csrf.ts). */
  csrf?: string;
  /** Browser bundle (public/js/<name>.js) the page loads, if any. */
  script?: string;
  [key: string]: unknown;
}

/** Renders views/<name>.eta inside the shared layout. */
export function renderView(name: string, data: PageData): string {
  return eta.render(name, data);
}
