/**
 * The `Link` header of a paged list, as Hanko writes it (api/pagination/header.go): `first`,
 * `last`, `next` and `prev` as they apply, each the request's URL with `page` and
 * `per_page` set, query parameters sorted by name, joined by commas.
 */
export function paginationLink(url: URL, total: number, page: number, perPage: number): string {
  const lastPage = Math.max(1, Math.ceil(total / perPage));
  const link = (rel: string, to: number) => {
    const target = new URL(url);
    target.searchParams.set('page', String(to));
    target.searchParams.set('per_page', String(perPage));
    target.searchParams.sort();
    return `<${target.href}>; rel="${rel}"`;
  };
  const links: string[] = [];
  if (page !== 1 || page === lastPage) links.push(link('first', 1));
  if (page !== lastPage) links.push(link('last', lastPage));
  if (page < lastPage) links.push(link('next', page + 1));
  if (page > 1) links.push(link('prev', page - 1));
  return links.join(',');
}
