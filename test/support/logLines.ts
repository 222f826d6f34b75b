/** The line Sesame logs for each request it answers (src/http/middleware/requestLog.ts). */
export interface RequestLine {
  msg: 'request';
  method: string;
  url: string;
  /** The URL's length, when `url` was cut (src/logger.ts). */
  url_length?: number;
  status: number;
  ip: string;
}

/** The request lines among a logger's JSON lines, in order. */
export function requestLines(lines: readonly string[]): RequestLine[] {
  return lines
    .map((line) => JSON.parse(line) as { msg: string })
    .filter((line): line is RequestLine => line.msg === 'request');
}
