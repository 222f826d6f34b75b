/** What a page that came back refused says of the field it puts the keyboard on. */
export interface FocusedField {
  id: string | undefined;
  invalid: boolean;
  describedBy: string | undefined;
}

/**
 * The field a page gives the focus (`autofocus`, which a page must have once at most), with
 * whether it is marked invalid and what describes it; undefined for a page with none.
 */
export function autofocusedField(html: string): FocusedField | undefined {
  const tags = html.match(/<(?:input|textarea|select)\b[^>]*\sautofocus\b[^>]*>/g) ?? [];
  if (tags.length > 1) throw new Error(`${tags.length} fields with autofocus: ${tags.join(' ')}`);
  const [tag] = tags;
  if (!tag) return undefined;
  return {
    id: /\sid="([^"]*)"/.exec(tag)?.[1],
    invalid: /\saria-invalid="true"/.test(tag),
    describedBy: /\saria-describedby="([^"]*)"/.exec(tag)?.[1],
  };
}
