import { imageSize } from 'image-size';

/** The image types a logo or favicon may be, by what their first bytes say (never by name or header). */
export const IMAGE_TYPES = ['image/png', 'image/jpeg', 'image/webp', 'image/x-icon'] as const;
export type ImageType = (typeof IMAGE_TYPES)[number];

/** The two brand images and their size limits: a logo is shown small, a favicon smaller. */
export const IMAGE_LIMITS = { logo: 256 * 1024, favicon: 64 * 1024 } as const;
export type BrandImageKind = keyof typeof IMAGE_LIMITS;

/**
 * The largest width and height, in pixels, each brand image may declare. Every visitor's
 * browser decodes the whole image (4 bytes a pixel) whatever size it is shown at, and a
 * small file can declare a huge one: a 256 KB PNG of one colour can say 30000×30000, 3.6 GB
 * decoded. A logo is shown at most a few hundred pixels wide, so 4096 leaves room for any
 * screen (64 MB decoded at most); a favicon is shown at 16 to 512 pixels.
 */
export const IMAGE_DIMENSION_LIMITS = { logo: 4096, favicon: 1024 } as const;

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

interface Dimensions {
  width: number;
  height: number;
}

/** What image-size calls each type the magic bytes allow. */
const SIZE_TYPES: Record<Exclude<ImageType, 'image/x-icon'>, string> = {
  'image/png': 'png',
  'image/jpeg': 'jpg',
  'image/webp': 'webp',
};

/** The size a PNG, JPEG or WebP declares in its header (PNG IHDR, JPEG SOF, WebP VP8/VP8L/VP8X). */
function declaredSize(bytes: Uint8Array, type: keyof typeof SIZE_TYPES): Dimensions | undefined {
  try {
    // A copy of exactly these bytes: image-size reads through a DataView on the underlying
    // buffer, which for a view into a larger one (an ICO's image, a pooled Buffer) would read
    // on past the end instead of failing on a cut header.
    const size = imageSize(new Uint8Array(bytes));
    if (size.type !== SIZE_TYPES[type]) return undefined;
    return { width: size.width, height: size.height };
  } catch {
    // Truncated or malformed where the size should be.
    return undefined;
  }
}

const u16 = (bytes: Uint8Array, at: number) => bytes[at]! | (bytes[at + 1]! << 8);
const u32 = (bytes: Uint8Array, at: number) => u16(bytes, at) + u16(bytes, at + 2) * 0x10000;
const i32 = (bytes: Uint8Array, at: number) => u32(bytes, at) | 0;

/**
 * The largest size among an ICO's images, read from each image itself: the directory says at
 * most 256, but a PNG inside may declare any size and browsers decode it. The other kind of
 * image an ICO holds is a bitmap without its file header; its info header's height counts
 * the image and its mask, so twice the image.
 */
function icoSize(bytes: Uint8Array): Dimensions | undefined {
  const count = u16(bytes, 4);
  if (bytes.length < 6 + count * 16) return undefined;
  let largest: Dimensions = { width: 0, height: 0 };
  for (let entry = 6; entry < 6 + count * 16; entry += 16) {
    const length = u32(bytes, entry + 8);
    const start = u32(bytes, entry + 12);
    if (start + length > bytes.length) return undefined;
    const image = bytes.subarray(start, start + length);
    const size = imageTypeOf(image) === 'image/png' ? declaredSize(image, 'image/png') : bitmapSize(image);
    if (!size) return undefined;
    largest = { width: Math.max(largest.width, size.width), height: Math.max(largest.height, size.height) };
  }
  return largest;
}

function bitmapSize(image: Uint8Array): Dimensions | undefined {
  // BITMAPINFOHEADER (40 bytes) or a later one that extends it.
  if (image.length < 40 || u32(image, 0) < 40) return undefined;
  return { width: Math.abs(i32(image, 4)), height: Math.abs(i32(image, 8)) / 2 };
}

/** The width and height an image of one of the accepted types declares, or undefined when they cannot be read. */
export function imageDimensionsOf(bytes: Uint8Array): Dimensions | undefined {
  const type = imageTypeOf(bytes);
  if (!type) return undefined;
  const size = type === 'image/x-icon' ? icoSize(bytes) : declaredSize(bytes, type);
  return size && size.width >= 1 && size.height >= 1 ? size : undefined;
}

/** Why these bytes cannot be the brand's `kind` image, or undefined when they can. */
export function imageProblem(kind: BrandImageKind, bytes: Uint8Array): string | undefined {
  if (bytes.length === 0) return 'is empty';
  if (bytes.length > IMAGE_LIMITS[kind]) return `must be at most ${IMAGE_LIMITS[kind] / 1024} KB`;
  if (!imageTypeOf(bytes)) return 'must be a PNG, JPEG, WebP or ICO image (SVG is not accepted)';
  const size = imageDimensionsOf(bytes);
  if (!size) return 'is damaged: its width and height cannot be read';
  const limit = IMAGE_DIMENSION_LIMITS[kind];
  if (size.width > limit || size.height > limit) {
    return `must be at most ${limit}×${limit} pixels (this one is ${size.width}×${size.height})`;
  }
  return undefined;
}
