/**
 * Images built byte by byte, each declaring the width and height given in its header: what a
 * browser reads before it decodes (and what a bomb lies about). Only the header is real.
 */

const u16be = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const u32be = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const u16le = (n: number) => Buffer.from([n & 0xff, n >> 8]);
const u24le = (n: number) => Buffer.from([n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff]);

/** A PNG whose IHDR says width × height (8-bit RGBA), `padding` zero bytes after it. */
export function pngDeclaring(width: number, height: number, padding = 0): Buffer {
  return Buffer.concat([
    Buffer.from('89504e470d0a1a0a', 'hex'),
    u32be(13),
    Buffer.from('IHDR'),
    u32be(width),
    u32be(height),
    Buffer.from([8, 6, 0, 0, 0]),
    Buffer.alloc(4), // CRC
    Buffer.alloc(padding),
  ]);
}

/** A JPEG frame header: SOFn (`marker` 0xc0 for baseline, 0xc3 lossless, 0xc9 arithmetic…) saying width × height. */
export function jpegFrame(width: number, height: number, marker = 0xc0): Buffer {
  return Buffer.concat([
    Buffer.from([0xff, marker, 0, 17, 8]),
    u16be(height),
    u16be(width),
    Buffer.from([3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]),
  ]);
}

/** A JPEG (JFIF) holding these segments, between its APP0 and its end. */
export function jpegOf(...segments: Buffer[]): Buffer {
  return Buffer.concat([
    Buffer.from('ffd8ffe00010', 'hex'),
    Buffer.from('JFIF\0'),
    Buffer.from([1, 1, 0, 0, 1, 0, 1, 0, 0]),
    ...segments,
    Buffer.from('ffd9', 'hex'),
  ]);
}

/** A JPEG (JFIF) whose baseline SOF0 says width × height. */
export const jpegDeclaring = (width: number, height: number) => jpegOf(jpegFrame(width, height));

/**
 * A WebP whose first chunk says width × height: an extended file's canvas (VP8X), or the
 * header of a lossy (VP8) or lossless (VP8L) bitstream.
 */
export function webpDeclaring(
  width: number,
  height: number,
  kind: 'VP8X' | 'VP8 ' | 'VP8L' = 'VP8X',
): Buffer {
  const payload = {
    VP8X: () => Buffer.concat([Buffer.from([0, 0, 0, 0]), u24le(width - 1), u24le(height - 1)]),
    'VP8 ': () =>
      Buffer.concat([Buffer.from([0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a]), u16le(width), u16le(height)]),
    VP8L: () => {
      const bits = Buffer.alloc(4);
      bits.writeUInt32LE((width - 1) | ((height - 1) << 14));
      return Buffer.concat([Buffer.from([0x2f]), bits, Buffer.alloc(5)]);
    },
  }[kind]();
  const chunk = Buffer.concat([Buffer.from(kind), Buffer.from([payload.length, 0, 0, 0]), payload]);
  return Buffer.concat([
    Buffer.from('RIFF'),
    Buffer.from([chunk.length + 4, 0, 0, 0]),
    Buffer.from('WEBP'),
    chunk,
  ]);
}

/** An ICO holding these images (PNGs, as modern icons do); its directory says 256 for any larger. */
export function icoOf(...images: Buffer[]): Buffer {
  const entries = images.map((image, i) => {
    const entry = Buffer.alloc(16);
    const start = 6 + images.length * 16 + images.slice(0, i).reduce((sum, b) => sum + b.length, 0);
    entry.writeUInt16LE(1, 4); // planes
    entry.writeUInt16LE(32, 6); // bits per pixel
    entry.writeUInt32LE(image.length, 8);
    entry.writeUInt32LE(start, 12);
    return entry;
  });
  return Buffer.concat([Buffer.from([0, 0, 1, 0, images.length, 0]), ...entries, ...images]);
}
