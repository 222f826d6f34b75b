import Color from 'colorjs.io';

/** WCAG 2.x success criterion 1.4.3 (AA): normal text needs this contrast ratio with its background. */
export const AA_NORMAL_TEXT = 4.5;

/** Sesame's own accent (indigo 600): 6.3:1 on white. */
export const DEFAULT_ACCENT = '#4f46e5';

const WHITE = '#ffffff';
/** The dark text colour of sesame.css: labels on a light accent use it rather than pure black. */
const NEAR_BLACK = '#111827';
/** The lighter of the two dark-mode surfaces in sesame.css (the card); the page behind it is darker. */
const DARK_CARD = '#1f2937';

/** The WCAG 2.1 contrast ratio of two colours, from 1 (none) to 21 (black on white). */
export function contrastRatio(a: string, b: string): number {
  return new Color(a).contrast(new Color(b), 'WCAG21');
}

/** `#abc` or `#aabbcc` (any case) as lower-case `#aabbcc`; undefined for anything else. */
export function normaliseHexColour(value: string): string | undefined {
  const match = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(value.trim());
  if (!match) return undefined;
  const digits = match[1]!.toLowerCase();
  return `#${digits.length === 3 ? [...digits].map((d) => d + d).join('') : digits}`;
}

/**
 * Why `value` cannot be the accent, or undefined when it can: it must be a hex colour, and
 * links and outlines drawn in it on the white card must be readable text (WCAG AA, 4.5:1).
 */
export function accentProblem(value: string): string | undefined {
  const hex = normaliseHexColour(value);
  if (!hex) return 'must be a hex colour such as #4f46e5';
  const ratio = contrastRatio(hex, WHITE);
  if (ratio < AA_NORMAL_TEXT) {
    return `has a contrast of ${ratio.toFixed(2)}:1 on white; WCAG AA needs at least ${AA_NORMAL_TEXT}:1 (choose a darker colour)`;
  }
  return undefined;
}

/** White or near-black, whichever reads better on `background`. */
export function textColourOn(background: string): string {
  return contrastRatio(WHITE, background) >= contrastRatio(NEAR_BLACK, background) ? WHITE : NEAR_BLACK;
}

/** The accent and the text drawn on it, for the light and the dark colour scheme. */
export interface AccentPalette {
  accent: string;
  onAccent: string;
  /** The accent lightened until it reads as text on the dark card. */
  darkAccent: string;
  onDarkAccent: string;
}

/**
 * The colours pages use for an accent that passed {@link accentProblem}. In dark mode the
 * accent is mixed with white in small steps until it has AA contrast on the dark card (a
 * dark brand colour is unreadable there); button labels take white or near-black, whichever
 * contrasts more, which is at least 4.5:1 on both.
 */
export function accentPalette(accent: string): AccentPalette {
  const hex = normaliseHexColour(accent) ?? DEFAULT_ACCENT;
  let darkAccent = hex;
  for (let white = 0.05; contrastRatio(darkAccent, DARK_CARD) < AA_NORMAL_TEXT && white <= 1; white += 0.05) {
    darkAccent = new Color(hex).mix(WHITE, white, { space: 'srgb' }).to('srgb').toString({ format: 'hex' });
    darkAccent = normaliseHexColour(darkAccent) ?? WHITE;
  }
  return { accent: hex, onAccent: textColourOn(hex), darkAccent, onDarkAccent: textColourOn(darkAccent) };
}
