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

// Reads that the callers bound-check first (a read past the end would give NaN or 0).
const u16le = (bytes: Uint8Array, at: number) => bytes[at]! | (bytes[at + 1]! << 8);
const u24le = (bytes: Uint8Array, at: number) => u16le(bytes, at) + bytes[at + 2]! * 0x10000;
const u32le = (bytes: Uint8Array, at: number) => u16le(bytes, at) + u16le(bytes, at + 2) * 0x10000;
const i32le = (bytes: Uint8Array, at: number) => u32le(bytes, at) | 0;
const u16be = (bytes: Uint8Array, at: number) => (bytes[at]! << 8) | bytes[at + 1]!;
const u32be = (bytes: Uint8Array, at: number) => u16be(bytes, at) * 0x10000 + u16be(bytes, at + 2);

/** A PNG's size, from its IHDR chunk, which must come first (PNG §11.2.2): length 13, "IHDR", width, height. */
function pngSize(bytes: Uint8Array): Dimensions | undefined {
  if (bytes.length < 24 || !startsWith(bytes, [0x49, 0x48, 0x44, 0x52], 12)) return undefined;
  return { width: u32be(bytes, 16), height: u32be(bytes, 20) };
}

/** Markers without a length: TEM and RST0–RST7 (ITU T.81 Table B.1). */
const standsAlone = (marker: number) => marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7);
/** SOF0–SOF15, every kind of frame header, but for DHT, JPG and DAC, which share the range. */
const isFrameHeader = (marker: number) =>
  marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;

/**
 * A JPEG's size, from its first frame header (SOFn) before the first scan, the one libjpeg
 * (Chromium, Firefox) decodes. The segments are walked as libjpeg walks them, except that
 * anything it would skip with a warning (a byte other than 0xFF between segments) is refused:
 * a reader that skips it differently finds a different frame header, say a small one hidden
 * inside an APP segment, and lets a huge image through.
 */
function jpegSize(bytes: Uint8Array): Dimensions | undefined {
  let at = 2; // after SOI
  for (;;) {
    if (bytes[at] !== 0xff) return undefined;
    while (bytes[at] === 0xff) at++; // fill bytes (T.81 B.1.1.2)
    const marker = bytes[at++];
    if (marker === undefined) return undefined;
    if (standsAlone(marker)) continue;
    // A stuffed 0 (not a marker), reserved markers (libjpeg refuses them), and SOI, EOI or SOS
    // (a scan) before any frame header.
    if (marker < 0xc0 || marker === 0xd8 || marker === 0xd9 || marker === 0xda) return undefined;
    if (at + 2 > bytes.length) return undefined;
    const length = u16be(bytes, at); // counts itself, not the marker
    if (length < 2) return undefined;
    if (isFrameHeader(marker)) {
      // Precision (1 byte), lines (2), samples per line (2). Zero lines would mean a DNL
      // segment after the first scan says how many: refused as unreadable, like libjpeg does.
      if (length < 7 || at + 7 > bytes.length) return undefined;
      return { width: u16be(bytes, at + 5), height: u16be(bytes, at + 3) };
    }
    at += length;
  }
}

/**
 * A WebP's size, from the first chunk after "WEBP", as libwebp reads it: the canvas of an
 * extended file (VP8X; libwebp refuses an image that does not match it), else the header
 * of the lossy (VP8, RFC 6386 §9.1) or lossless (VP8L) bitstream.
 */
function webpSize(bytes: Uint8Array): Dimensions | undefined {
  if (bytes.length < 30) return undefined;
  const chunk = String.fromCharCode(...bytes.subarray(12, 16));
  if (chunk === 'VP8X') {
    // Flags (1 byte), reserved (3), canvas width − 1 (3), height − 1 (3).
    return { width: 1 + u24le(bytes, 24), height: 1 + u24le(bytes, 27) };
  }
  if (chunk === 'VP8 ') {
    // Frame tag (3 bytes), start code 9d 01 2a, then width and height in 14 bits each.
    if (!startsWith(bytes, [0x9d, 0x01, 0x2a], 23)) return undefined;
    return { width: u16le(bytes, 26) & 0x3fff, height: u16le(bytes, 28) & 0x3fff };
  }
  if (chunk === 'VP8L') {
    // Signature 0x2f, then width − 1 and height − 1 in 14 bits each.
    if (bytes[20] !== 0x2f) return undefined;
    const bits = u32le(bytes, 21);
    return { width: 1 + (bits & 0x3fff), height: 1 + ((bits >>> 14) & 0x3fff) };
  }
  return undefined;
}

/**
 * The most images an ICO may hold. Real favicons hold a handful (16, 32, 48 … 256 pixels)
 * and each one is read, so a directory of thousands would cost CPU for nothing.
 */
export const ICO_MAX_IMAGES = 64;

/** How many images an ICO's directory lists. */
const icoImageCount = (bytes: Uint8Array) => u16le(bytes, 4);

/**
 * The largest size among an ICO's images, read from each image itself: the directory says at
 * most 256, but a PNG inside may declare any size and browsers decode it. The other kind of
 * image an ICO holds is a bitmap without its file header; its info header's height counts
 * the image and its mask, so twice the image. Only the header of each image is read.
 */
function icoSize(bytes: Uint8Array): Dimensions | undefined {
  const count = icoImageCount(bytes);
  if (count > ICO_MAX_IMAGES || bytes.length < 6 + count * 16) return undefined;
  let largest: Dimensions = { width: 0, height: 0 };
  for (let entry = 6; entry < 6 + count * 16; entry += 16) {
    const length = u32le(bytes, entry + 8);
    const start = u32le(bytes, entry + 12);
    if (start + length > bytes.length) return undefined;
    const image = bytes.subarray(start, start + length);
    const size = imageTypeOf(image) === 'image/png' ? pngSize(image) : bitmapSize(image);
    if (!size) return undefined;
    largest = { width: Math.max(largest.width, size.width), height: Math.max(largest.height, size.height) };
  }
  return largest;
}

function bitmapSize(image: Uint8Array): Dimensions | undefined {
  // BITMAPINFOHEADER (40 bytes) or a later one that extends it.
  if (image.length < 40 || u32le(image, 0) < 40) return undefined;
  return { width: Math.abs(i32le(image, 4)), height: Math.abs(i32le(image, 8)) / 2 };
}

const SIZE_READERS: Record<ImageType, (bytes: Uint8Array) => Dimensions | undefined> = {
  'image/png': pngSize,
  'image/jpeg': jpegSize,
  'image/webp': webpSize,
  'image/x-icon': icoSize,
};

/** The width and height an image of one of the accepted types declares, or undefined when they cannot be read. */
export function imageDimensionsOf(bytes: Uint8Array): Dimensions | undefined {
  const type = imageTypeOf(bytes);
  if (!type) return undefined;
  const size = SIZE_READERS[type](bytes);
  return size && size.width >= 1 && size.height >= 1 ? size : undefined;
}

/** Why these bytes cannot be the brand's `kind` image, or undefined when they can. */
export function imageProblem(kind: BrandImageKind, bytes: Uint8Array): string | undefined {
  if (bytes.length === 0) return 'is empty';
  if (bytes.length > IMAGE_LIMITS[kind]) return `must be at most ${IMAGE_LIMITS[kind] / 1024} KB`;
  const type = imageTypeOf(bytes);
  if (!type) return 'must be a PNG, JPEG, WebP or ICO image (SVG is not accepted)';
  if (type === 'image/x-icon' && icoImageCount(bytes) > ICO_MAX_IMAGES) {
    return `must hold at most ${ICO_MAX_IMAGES} images (this icon holds ${icoImageCount(bytes)})`;
  }
  const size = imageDimensionsOf(bytes);
  if (!size) return 'is damaged: its width and height cannot be read';
  const limit = IMAGE_DIMENSION_LIMITS[kind];
  if (size.width > limit || size.height > limit) {
    return `must be at most ${limit}×${limit} pixels (this one is ${size.width}×${size.height})`;
  }
  return undefined;
}
