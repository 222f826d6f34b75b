/** The image types a logo or favicon may be, by what their first bytes say (never by name or header). */
export const IMAGE_TYPES = ['image/png', 'image/jpeg', 'image/webp', 'image/x-icon'] as const;
export type ImageType = (typeof IMAGE_TYPES)[number];

/** The two brand images and their size limits: a logo is shown small, a favicon smaller. */
export const IMAGE_LIMITS = { logo: 256 * 1024, favicon: 64 * 1024 } as const;
export type BrandImageKind = keyof typeof IMAGE_LIMITS;

const startsWith = (bytes: Uint8Array, signature: readonly number[], at = 0) =>
  bytes.length >= at + signature.length && signature.every((byte, i) => bytes[at + i] === byte);

/**
 * The type of an image from its magic bytes: PNG, JPEG, WebP (a RIFF file of kind WEBP) or
 * ICO (reserved 0, type 1, at least one image). SVG is refused on purpose: it is a document
 * that can carry script and links, and nothing here cleans it.
 */
export function imageTypeOf(bytes: Uint8Array): ImageType | undefined {
  if (startsWith(bytes, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'image/png';
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return 'image/jpeg';
  if (startsWith(bytes, [0x52, 0x49, 0x46, 0x46]) && startsWith(bytes, [0x57, 0x45, 0x42, 0x50], 8)) {
    return 'image/webp';
  }
  if (startsWith(bytes, [0x00, 0x00, 0x01, 0x00]) && bytes.length >= 6 && (bytes[4]! | bytes[5]!) !== 0) {
    return 'image/x-icon';
  }
  return undefined;
}

/** Why these bytes cannot be the brand's `kind` image, or undefined when they can. */
export function imageProblem(kind: BrandImageKind, bytes: Uint8Array): string | undefined {
  if (bytes.length === 0) return 'is empty';
  if (bytes.length > IMAGE_LIMITS[kind]) return `must be at most ${IMAGE_LIMITS[kind] / 1024} KB`;
  if (!imageTypeOf(bytes)) return 'must be a PNG, JPEG, WebP or ICO image (SVG is not accepted)';
  return undefined;
}
