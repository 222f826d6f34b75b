import {
  AA_NORMAL_TEXT,
  accentPalette,
  accentProblem,
  contrastRatio,
  DEFAULT_ACCENT,
  normaliseHexColour,
} from '../../src/branding/colours.js';
import {
  ICO_MAX_IMAGES,
  IMAGE_DIMENSION_LIMITS,
  imageDimensionsOf,
  imageProblem,
  imageTypeOf,
} from '../../src/branding/images.js';
import { icoOf, jpegDeclaring, jpegFrame, jpegOf, pngDeclaring, webpDeclaring } from '../support/images.js';

/** The dark-mode card of sesame.css, the surface dark-mode accents are drawn on. */
const DARK_CARD = '#1f2937';

describe('the accent colour and WCAG AA', () => {
  it('computes WCAG 2.1 contrast ratios', () => {
    expect(contrastRatio('#000000', '#ffffff')).toBeCloseTo(21, 5);
    expect(contrastRatio('#ffffff', '#ffffff')).toBeCloseTo(1, 5);
    // The classic boundary: #767676 is the lightest grey with 4.5:1 on white.
    expect(contrastRatio('#767676', '#ffffff')).toBeCloseTo(4.54, 2);
  });

  it('reads #abc and #aabbcc in any case, and nothing else', () => {
    expect(normaliseHexColour('#ABC')).toBe('#aabbcc');
    expect(normaliseHexColour(' #0B5394 ')).toBe('#0b5394');
    for (const bad of ['abc', '#abcd', '#ggg', 'rgb(0,0,0)', 'red', '#0b5394ff']) {
      expect(normaliseHexColour(bad)).toBeUndefined();
    }
  });

  it('refuses a colour that fails 4.5:1 on white and accepts one that passes', () => {
    expect(accentProblem('#767676')).toBeUndefined();
    expect(accentProblem('#777777')).toMatch(/4\.48:1 on white; WCAG AA needs at least 4\.5:1/);
    expect(accentProblem('#ffcc00')).toMatch(/on white/);
    expect(accentProblem('blue')).toBe('must be a hex colour such as #4f46e5');
  });

  it.each([DEFAULT_ACCENT, '#000000', '#0b5394', '#b91c1c', '#005a00', '#767676', '#6d28d9'])(
    'gives %s readable labels in light mode, and a dark-mode variant readable on the dark card with readable labels',
    (accent) => {
      const palette = accentPalette(accent);
      expect(contrastRatio(palette.accent, '#ffffff')).toBeGreaterThanOrEqual(AA_NORMAL_TEXT);
      expect(contrastRatio(palette.onAccent, palette.accent)).toBeGreaterThanOrEqual(AA_NORMAL_TEXT);
      expect(contrastRatio(palette.darkAccent, DARK_CARD)).toBeGreaterThanOrEqual(AA_NORMAL_TEXT);
      expect(contrastRatio(palette.onDarkAccent, palette.darkAccent)).toBeGreaterThanOrEqual(AA_NORMAL_TEXT);
    },
  );

  it('picks near-black labels on a light accent and white ones on a dark accent', () => {
    expect(accentPalette('#000000')).toMatchObject({ onAccent: '#ffffff', onDarkAccent: '#111827' });
  });
});

describe('brand images, by their magic bytes', () => {
  const bytes = (hex: string, padding = 16) =>
    Buffer.concat([Buffer.from(hex, 'hex'), Buffer.alloc(padding)]);

  it('recognises PNG, JPEG, WebP and ICO', () => {
    expect(imageTypeOf(bytes('89504e470d0a1a0a'))).toBe('image/png');
    expect(imageTypeOf(bytes('ffd8ffe0'))).toBe('image/jpeg');
    expect(imageTypeOf(bytes('52494646000000005745425056503820'))).toBe('image/webp');
    expect(imageTypeOf(bytes('000001000100'))).toBe('image/x-icon');
  });

  it('refuses SVG, GIF, a RIFF file that is not WebP, a cursor, HTML and a truncated signature', () => {
    for (const other of [
      Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>'),
      Buffer.from('<?xml version="1.0"?><svg/>'),
      bytes('474946383961'),
      bytes('52494646000000005741564520'),
      bytes('000002000100'),
      bytes('000001000000'),
      Buffer.from('<html><script>alert(1)</script></html>'),
      Buffer.from('89504e47', 'hex'),
    ]) {
      expect(imageTypeOf(other)).toBeUndefined();
    }
  });

  it('checks the size for each kind: 256 KB for a logo, 64 KB for a favicon', () => {
    const png = (size: number) => pngDeclaring(64, 64, size - pngDeclaring(64, 64).length);
    expect(imageProblem('logo', png(256 * 1024))).toBeUndefined();
    expect(imageProblem('logo', png(256 * 1024 + 1))).toBe('must be at most 256 KB');
    expect(imageProblem('favicon', png(64 * 1024))).toBeUndefined();
    expect(imageProblem('favicon', png(64 * 1024 + 1))).toBe('must be at most 64 KB');
    expect(imageProblem('logo', Buffer.alloc(0))).toBe('is empty');
  });

  it('reads the width and height each type declares: PNG IHDR, JPEG SOF, WebP VP8X, VP8 and VP8L, the images inside an ICO', () => {
    expect(imageDimensionsOf(pngDeclaring(640, 480))).toEqual({ width: 640, height: 480 });
    expect(imageDimensionsOf(jpegDeclaring(800, 600))).toEqual({ width: 800, height: 600 });
    expect(imageDimensionsOf(webpDeclaring(1200, 300))).toEqual({ width: 1200, height: 300 });
    expect(imageDimensionsOf(webpDeclaring(1200, 300, 'VP8 '))).toEqual({ width: 1200, height: 300 });
    expect(imageDimensionsOf(webpDeclaring(1200, 300, 'VP8L'))).toEqual({ width: 1200, height: 300 });
    expect(imageDimensionsOf(icoOf(pngDeclaring(16, 16), pngDeclaring(48, 32)))).toEqual({
      width: 48,
      height: 32,
    });
  });

  it('refuses an image that declares more than 4096×4096 pixels for a logo or 1024×1024 for a favicon, whatever its file size', () => {
    expect(IMAGE_DIMENSION_LIMITS).toEqual({ logo: 4096, favicon: 1024 });
    for (const fits of [pngDeclaring(4096, 4096), jpegDeclaring(4096, 100), webpDeclaring(100, 4096)]) {
      expect(imageProblem('logo', fits)).toBeUndefined();
    }
    // A few hundred bytes that would take every visitor's browser 3.6 GB to decode.
    expect(imageProblem('logo', pngDeclaring(30000, 30000))).toBe(
      'must be at most 4096×4096 pixels (this one is 30000×30000)',
    );
    expect(imageProblem('logo', jpegDeclaring(4097, 10))).toBe(
      'must be at most 4096×4096 pixels (this one is 4097×10)',
    );
    expect(imageProblem('logo', webpDeclaring(10, 16000))).toBe(
      'must be at most 4096×4096 pixels (this one is 10×16000)',
    );
    expect(imageProblem('favicon', pngDeclaring(1024, 1024))).toBeUndefined();
    expect(imageProblem('favicon', pngDeclaring(1025, 16))).toContain('at most 1024×1024 pixels');
    // An ICO's directory says 256 at most; the PNG inside it is what browsers decode.
    expect(imageProblem('favicon', icoOf(pngDeclaring(16, 16)))).toBeUndefined();
    expect(imageProblem('favicon', icoOf(pngDeclaring(16, 16), pngDeclaring(20000, 20000)))).toBe(
      'must be at most 1024×1024 pixels (this one is 20000×20000)',
    );
  });

  it('reads the first frame header of any kind, as decoders do: a small SOF0 after a lossless or arithmetic one does not hide it', () => {
    for (const marker of [0xc1, 0xc2, 0xc3, 0xc5, 0xc7, 0xc9, 0xcb, 0xcd, 0xcf]) {
      const jpeg = jpegOf(jpegFrame(5000, 5000, marker), jpegFrame(8, 8));
      expect(imageDimensionsOf(jpeg)).toEqual({ width: 5000, height: 5000 });
    }
    // DHT, JPG and DAC share the range but are not frame headers.
    const dht = Buffer.from([0xff, 0xc4, 0, 4, 0, 0]);
    expect(imageDimensionsOf(jpegOf(dht, jpegFrame(640, 480)))).toEqual({ width: 640, height: 480 });
    // Fill bytes before a marker and markers without a length (RST0, TEM) are walked over.
    const standalone = Buffer.from([0xff, 0xff, 0xff, 0xd0, 0xff, 0x01]);
    expect(imageDimensionsOf(jpegOf(standalone, jpegFrame(640, 480)))).toEqual({ width: 640, height: 480 });
  });

  it('refuses a JPEG with a stray byte between segments, where a reader that skips it differently finds a small frame hidden in an APP segment', () => {
    // An APP0 segment whose data holds a fake 8×8 frame header, then one stray byte, then
    // a 5000×5000 image: libjpeg skips the byte to the next marker and decodes 5000×5000.
    const app0 = Buffer.alloc(0x2010 - 2);
    app0[0] = 1;
    jpegFrame(8, 8).copy(app0, 0x1000);
    const crafted = Buffer.concat([
      Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x20, 0x10]),
      app0,
      Buffer.from([0]),
      jpegDeclaring(5000, 5000).subarray(2),
    ]);
    expect(imageProblem('logo', crafted)).toBe('is damaged: its width and height cannot be read');
    // The same without the stray byte is read as what it is.
    const plain = Buffer.concat([
      crafted.subarray(0, 6 + app0.length),
      jpegDeclaring(5000, 5000).subarray(2),
    ]);
    expect(imageProblem('logo', plain)).toBe('must be at most 4096×4096 pixels (this one is 5000×5000)');
  });

  it(`refuses an ICO of more than ${ICO_MAX_IMAGES} images before reading them`, () => {
    expect(ICO_MAX_IMAGES).toBe(64);
    const icon = pngDeclaring(16, 16);
    expect(imageProblem('favicon', icoOf(...Array(ICO_MAX_IMAGES).fill(icon)))).toBeUndefined();
    expect(imageProblem('favicon', icoOf(...Array(ICO_MAX_IMAGES + 1).fill(icon)))).toBe(
      `must hold at most ${ICO_MAX_IMAGES} images (this icon holds ${ICO_MAX_IMAGES + 1})`,
    );
    // 8,000 entries that all point to one 130 KB image: each was copied in full to be read,
    // over a second of CPU for one upload.
    const large = pngDeclaring(16, 16, 130 * 1024);
    const directory = Buffer.alloc(8000 * 16);
    for (let entry = 0; entry < 8000; entry++) {
      directory.writeUInt32LE(large.length, entry * 16 + 8);
      directory.writeUInt32LE(6 + directory.length, entry * 16 + 12);
    }
    const crafted = Buffer.concat([Buffer.from([0, 0, 1, 0, 8000 & 0xff, 8000 >> 8]), directory, large]);
    expect(imageProblem('logo', crafted)).toBe(
      `must hold at most ${ICO_MAX_IMAGES} images (this icon holds 8000)`,
    );
    expect(imageDimensionsOf(crafted)).toBeUndefined();
  });

  it('refuses an image whose width and height cannot be read', () => {
    const damaged = 'is damaged: its width and height cannot be read';
    for (const bytes of [
      pngDeclaring(64, 64).subarray(0, 20), // cut inside the IHDR
      pngDeclaring(0, 64), // no pixels
      Buffer.concat([Buffer.from('ffd8ffe0', 'hex'), Buffer.alloc(60, 1)]), // no SOF
      jpegOf(Buffer.from('ffda000200', 'hex'), jpegFrame(64, 64)), // a scan before any frame
      jpegOf(jpegFrame(64, 0)), // its height left to a DNL segment after the first scan
      jpegOf(Buffer.from('ffc00011', 'hex')), // cut inside the frame header
      webpDeclaring(10, 10, 'VP8 ').fill(0, 23, 26), // no start code
      webpDeclaring(10, 10).subarray(0, 24),
      // An ICO whose image lies outside the file.
      Buffer.concat([Buffer.from([0, 0, 1, 0, 1, 0]), Buffer.alloc(40, 7)]),
    ]) {
      expect(imageProblem('logo', bytes)).toBe(damaged);
    }
  });
});
