import type Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import type { BrandChange } from '../../branding/brand.js';
import { etagOf } from '../../branding/brand.js';
import { accentProblem, normaliseHexColour } from '../../branding/colours.js';
import { type BrandImageKind, IMAGE_LIMITS, imageProblem, imageTypeOf } from '../../branding/images.js';
import {
  CONTROL_CHARACTERS_REFUSED,
  hasNoControlCharacters,
  INVISIBLE_NAME_REFUSED,
  isVisibleText,
} from '../../text.js';
import type { UploadedFiles } from '../middleware/uploads.js';
import { parseBody } from '../schemas.js';
import type { Services } from '../services.js';
import type { AdminPageKit } from './adminPageKit.js';

const checkbox = z.literal('on').optional();
const brandingFormSchema = z.object({
  name: z.string().max(1000).default(''),
  accent: z.string().max(100).default(''),
  remove_logo: checkbox,
  remove_favicon: checkbox,
});
type BrandingForm = z.output<typeof brandingFormSchema>;

/** Notices these pages redirect to (see adminPages.ts). */
export const BRANDING_NOTICES: Record<string, string> = {
  'branding-saved': 'Branding saved: every page shows it now.',
};

/**
 * The change a submitted form asks for, or the message of each field that is wrong. An empty
 * name or accent returns to the configured one; an image is replaced only when one is sent.
 */
function brandChangeFrom(form: BrandingForm, uploads: UploadedFiles) {
  const errors: Record<string, string> = {};
  const change: BrandChange = {};
  const name = form.name.trim();
  if (name.length > 64) errors.name = 'must be at most 64 characters';
  // The name is every page's title and heading: no line breaks or bidi overrides, as no name has.
  else if (!hasNoControlCharacters(name)) errors.name = CONTROL_CHARACTERS_REFUSED;
  // Zero-width characters alone would title every page with nothing; an empty field returns to the config.
  else if (name && !isVisibleText(name)) errors.name = INVISIBLE_NAME_REFUSED;
  else change.name = name || null;
  const accent = form.accent.trim();
  const accentError = accent ? accentProblem(accent) : undefined;
  if (accentError) errors.accent = accentError;
  else change.accent = accent ? normaliseHexColour(accent)! : null;
  for (const kind of ['logo', 'favicon'] as const satisfies BrandImageKind[]) {
    // A file input left empty still sends a part: no name, no bytes. That keeps the image.
    const bytes = uploads[kind]?.[0]?.buffer;
    if (bytes?.length) {
      const problem = imageProblem(kind, bytes);
      if (problem) errors[kind] = problem;
      else change[kind] = { bytes, type: imageTypeOf(bytes)!, etag: etagOf(bytes) };
    } else if (form[`remove_${kind}`] === 'on') {
      change[kind] = null;
    }
  }
  return { change, errors };
}

/**
 * /admin/branding: the name, accent colour, logo and favicon people see on every page,
 * over the BRAND_* settings. The form is multipart (parseUploads reads it, within the
 * images' size limits) and posts with the CSRF token like every admin form.
 */
export function brandingPages(router: Router, kit: AdminPageKit, { config, brand }: Services): void {
  async function renderForm(ctx: Context, form?: Partial<BrandingForm>, errors: Record<string, string> = {}) {
    const current = await brand.current();
    kit.render(ctx, 'branding', {
      title: 'Branding',
      current,
      defaults: { name: config.brand.name, accent: config.brand.accent },
      form: form ?? {
        name: current.overridden.name ? current.name : '',
        accent: current.overridden.accent ? current.palette.accent : '',
      },
      errors,
      limits: { logo: IMAGE_LIMITS.logo / 1024, favicon: IMAGE_LIMITS.favicon / 1024 },
    });
  }

  router.get('/branding', (ctx) => renderForm(ctx));

  // The name and logo every person sees when they sign in: a step-up, as for a client's settings.
  router.post('/branding', kit.stepUp, async (ctx) => {
    const form = parseBody(ctx, brandingFormSchema);
    const { change, errors } = brandChangeFrom(form, (ctx.state.uploads ?? {}) as UploadedFiles);
    if (Object.keys(errors).length > 0) {
      ctx.status = 400;
      await renderForm(ctx, form, errors);
      return;
    }
    await brand.update(change, kit.actor(ctx));
    ctx.redirect('/admin/branding?done=branding-saved');
  });
}
