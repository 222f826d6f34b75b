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

/** A JPEG (JFIF) whose baseline SOF0 says width × height. */
export function jpegDeclaring(width: number, height: number): Buffer {
  return Buffer.concat([
    Buffer.from('ffd8ffe00010', 'hex'),
    Buffer.from('JFIF\0'),
    Buffer.from([1, 1, 0, 0, 1, 0, 1, 0, 0]),
    Buffer.from('ffc00011', 'hex'),
    Buffer.from([8]),
    u16be(height),
    u16be(width),
    Buffer.from([3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]),
    Buffer.from('ffd9', 'hex'),
  ]);
}

/** An extended WebP (VP8X) whose canvas is width × height. */
export function webpDeclaring(width: number, height: number): Buffer {
  const chunk = Buffer.concat([
    Buffer.from('VP8X'),
    Buffer.from([10, 0, 0, 0]),
    Buffer.alloc(4),
    u24le(width - 1),
    u24le(height - 1),
  ]);
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
