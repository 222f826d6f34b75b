import type { Context, Next } from 'koa';
import type Multer from 'multer';
import { IMAGE_LIMITS } from '../../branding/images.js';
import { HttpError } from '../errors.js';

/** Files a multipart form may carry, each at most once, and the largest any of them may be. */
const UPLOAD_FIELDS = [
  { name: 'logo', maxCount: 1 },
  { name: 'favicon', maxCount: 1 },
];
const LARGEST_UPLOAD = Math.max(...Object.values(IMAGE_LIMITS));

/** multer, loaded with the first upload (only admins upload; nobody else pays for it at start). */
let loaded:
  | Promise<{ multer: typeof Multer; parse: ReturnType<ReturnType<typeof Multer>['fields']> }>
  | undefined;
function uploadParser() {
  loaded ??= import('multer').then(({ default: multer }) => ({
    multer,
    parse: multer({
      storage: multer.memoryStorage(),
      // Parsing stops at the first part past a limit: an oversized file is never held whole.
      limits: {
        fileSize: LARGEST_UPLOAD,
        files: UPLOAD_FIELDS.length,
        fields: 20,
        fieldSize: 8 * 1024,
        parts: 24,
      },
    }).fields(UPLOAD_FIELDS),
  }));
  return loaded;
}

/** Uploaded files by form field, after {@link parseUploads}. */
export type UploadedFiles = Partial<Record<string, { buffer: Buffer }[]>>;

/**
 * Parses a `multipart/form-data` body (the branding form's images) into memory: its fields
 * become `ctx.request.body`, so the CSRF check after it reads `_csrf` as in any form, and its
 * files `ctx.state.uploads`. Other bodies pass untouched. Too large a file, or an unexpected
 * one, is a 413 or 400 before any handler runs.
 */
export async function parseUploads(ctx: Context, next: Next) {
  if (!ctx.is('multipart/form-data')) return next();
  const req = ctx.req as typeof ctx.req & { body?: Record<string, unknown>; files?: UploadedFiles };
  const { multer, parse } = await uploadParser();
  try {
    await new Promise<void>((resolve, reject) =>
      parse(req as never, ctx.res as never, (error?: unknown) => (error ? reject(error) : resolve())),
    );
  } catch (error) {
    if (error instanceof multer.MulterError && error.code === 'LIMIT_FILE_SIZE') {
      throw new HttpError(
        413,
        'too_large',
        `The ${error.field ?? 'file'} must be at most ${LARGEST_UPLOAD / 1024} KB.`,
      );
    }
    // A limit, or a body that is not well-formed multipart (busboy's own errors).
    throw new HttpError(400, 'invalid_upload', `The form could not be read: ${(error as Error).message}.`);
  }
  ctx.request.body = { ...req.body };
  ctx.state.uploads = req.files ?? {};
  await next();
}
