/**
 * HTTP/1.1 message framing for the gateway's own engine (RFC 9112), strict by design: an
 * edge that forwards requests must read each message exactly as the instance behind it
 * will, so anything two parsers could read differently is refused rather than repaired —
 * bare CR or LF, obs-fold, whitespace before a colon, control characters, a malformed
 * Content-Length, a Transfer-Encoding other than a lone `chunked`, chunk-size lines that
 * are not plain hex. The parsers are plain functions over latin1 strings and Buffers;
 * nothing here does I/O.
 *
 * Error codes follow llhttp's (`HPE_…`), so a message names the same fault whoever parses.
 */

/** A message the engine refuses to read: the status to answer (requests) and a one-line reason. */
export class HttpParseError extends Error {
  constructor(
    readonly code: string,
    /** The status a client gets for a request that fails this way. */
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'HttpParseError';
  }
}

/** A request head as the client sent it. */
export interface RequestHead {
  readonly method: string;
  /** The request target as sent (origin form `/p?q`, or absolute form `http://h/p`). */
  readonly url: string;
  readonly httpVersion: '1.0' | '1.1';
  /** `[name, value, …]` in the order sent: names as sent, values without surrounding blanks. */
  readonly rawHeaders: readonly string[];
}

/** A response head as an instance sent it. */
export interface ResponseHead {
  readonly status: number;
  readonly httpVersion: '1.0' | '1.1';
  readonly rawHeaders: readonly string[];
}

const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');

/** A token (RFC 9110 §5.6.2): method names and header names. */
const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A field value: visible characters, obs-text, spaces and tabs; no controls, CR, LF or DEL. */
const VALUE_RE = /^[\t\x20-\x7e\x80-\xff]*$/;
/** A request target: visible characters (and obs-text), no blanks or controls. */
const TARGET_RE = /^[\x21-\x7e\x80-\xff]+$/;
/** A status line's reason phrase. */
const REASON_RE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** Where the head ends (the index of its blank line's CRLFCRLF), or -1 while incomplete. */
export function findHeadEnd(buf: Buffer, from: number): number {
  return buf.indexOf(CRLFCRLF, from < 0 ? 0 : from);
}

/**
 * Whether an incomplete head already shows a line ending a strict parser refuses (a LF
 * without its CR, a CR followed by anything but LF): such a client would otherwise wait
 * for the headers timeout instead of getting its 400 at once.
 */
export function hasBadLineEnding(buf: Buffer, from: number): boolean {
  for (let i = buf.indexOf(10, from); i !== -1; i = buf.indexOf(10, i + 1)) {
    if (i === 0 || buf[i - 1] !== 13) return true;
  }
  for (let i = buf.indexOf(13, from); i !== -1; i = buf.indexOf(13, i + 1)) {
    if (i + 1 < buf.length && buf[i + 1] !== 10) return true;
  }
  return false;
}

function bad(code: string, message: string, status = 400): HttpParseError {
  return new HttpParseError(code, status, message);
}

/**
 * Reads header lines `text[from..]` (each ending in CRLF except the last, the blank line
 * already cut off) into `out`.
 */
function parseFields(text: string, from: number, out: string[], maxHeaders: number): void {
  let pos = from;
  const end = text.length;
  while (pos < end) {
    let eol = text.indexOf('\r\n', pos);
    if (eol === -1) eol = end;
    const first = text.charCodeAt(pos);
    if (first === 32 || first === 9) throw bad('HPE_INVALID_HEADER_TOKEN', 'obs-fold (a header line starting with a blank) is not accepted');
    const colon = text.indexOf(':', pos);
    if (colon === -1 || colon > eol) throw bad('HPE_INVALID_HEADER_TOKEN', 'a header line has no colon');
    const name = text.slice(pos, colon);
    if (!TOKEN_RE.test(name)) throw bad('HPE_INVALID_HEADER_TOKEN', `header name ${JSON.stringify(name.slice(0, 64))} is not a token`);
    let vs = colon + 1;
    let ve = eol;
    while (vs < ve && (text.charCodeAt(vs) === 32 || text.charCodeAt(vs) === 9)) vs++;
    while (ve > vs && (text.charCodeAt(ve - 1) === 32 || text.charCodeAt(ve - 1) === 9)) ve--;
    const value = text.slice(vs, ve);
    if (!VALUE_RE.test(value)) throw bad('HPE_INVALID_HEADER_TOKEN', `header ${JSON.stringify(name.slice(0, 64))} has a character a field value cannot have`);
    out.push(name, value);
    if (out.length > maxHeaders * 2) throw bad('HPE_HEADER_OVERFLOW', `more than ${maxHeaders} header lines`, 431);
    pos = eol + 2;
  }
}

/** Parses a request head: `text` is everything before the blank line, as latin1. */
export function parseRequestHead(text: string, maxHeaders = 500): RequestHead {
  let eol = text.indexOf('\r\n');
  if (eol === -1) eol = text.length;
  const sp1 = text.indexOf(' ');
  const sp2 = sp1 === -1 ? -1 : text.indexOf(' ', sp1 + 1);
  if (sp1 === -1 || sp2 === -1 || sp2 > eol) throw bad('HPE_INVALID_METHOD', 'the request line is not "METHOD target HTTP/1.1"');
  const method = text.slice(0, sp1);
  if (!TOKEN_RE.test(method)) throw bad('HPE_INVALID_METHOD', `method ${JSON.stringify(method.slice(0, 32))} is not a token`);
  const sp3 = text.indexOf(' ', sp2 + 1);
  if (sp3 !== -1 && sp3 < eol) throw bad('HPE_INVALID_URL', 'the request target has a blank');
  const url = text.slice(sp1 + 1, sp2);
  if (!TARGET_RE.test(url)) throw bad('HPE_INVALID_URL', 'the request target has a blank or a control character');
  const version = text.slice(sp2 + 1, eol);
  let httpVersion: '1.0' | '1.1';
  if (version === 'HTTP/1.1') httpVersion = '1.1';
  else if (version === 'HTTP/1.0') httpVersion = '1.0';
  else throw bad('HPE_INVALID_VERSION', 'the version is neither HTTP/1.0 nor HTTP/1.1');
  const rawHeaders: string[] = [];
  if (eol < text.length) parseFields(text, eol + 2, rawHeaders, maxHeaders);
  return { method, url, httpVersion, rawHeaders };
}

/** Parses a response head (an instance's): `text` is everything before the blank line. */
export function parseResponseHead(text: string, maxHeaders = 500): ResponseHead {
  let eol = text.indexOf('\r\n');
  if (eol === -1) eol = text.length;
  if (!text.startsWith('HTTP/1.')) throw bad('HPE_INVALID_CONSTANT', 'the answer is not HTTP/1.x', 502);
  const minor = text.charCodeAt(7);
  if ((minor !== 48 && minor !== 49) || text.charCodeAt(8) !== 32) throw bad('HPE_INVALID_VERSION', 'the answer is not HTTP/1.0 or HTTP/1.1', 502);
  const code = text.slice(9, 12);
  if (!/^[1-9]\d\d$/.test(code) || (eol > 12 && text.charCodeAt(12) !== 32)) throw bad('HPE_INVALID_STATUS', 'the status line has no three-digit status', 502);
  if (eol > 13 && !REASON_RE.test(text.slice(13, eol))) throw bad('HPE_INVALID_STATUS', 'the reason phrase has a control character', 502);
  const rawHeaders: string[] = [];
  if (eol < text.length) parseFields(text, eol + 2, rawHeaders, maxHeaders);
  return { status: Number(code), httpVersion: minor === 49 ? '1.1' : '1.0', rawHeaders };
}

/** A Content-Length value: digits only (no sign, list or blank), below 2^53. Null otherwise. */
export function parseContentLength(value: string): number | null {
  if (value.length === 0 || value.length > 15) return null;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 48 || c > 57) return null;
  }
  return Number(value);
}

/**
 * How a Transfer-Encoding value reads: `chunked` alone; `not-last` when chunked comes
 * before another coding (the body's end cannot be found: 400); `unsupported` otherwise
 * (another coding, or one applied before chunked: 501).
 */
export function readTransferEncoding(value: string): 'chunked' | 'not-last' | 'unsupported' {
  if (value.length === 7 && value.toLowerCase() === 'chunked') return 'chunked';
  const codings = value.split(',').map((c) => c.trim().toLowerCase());
  const at = codings.indexOf('chunked');
  if (at !== -1 && at < codings.length - 1) return 'not-last';
  return 'unsupported';
}

/** Whether a comma-separated header value lists `token` (case-insensitive). */
export function hasToken(value: string, token: string): boolean {
  if (value.length === token.length) return value.toLowerCase() === token;
  for (const part of value.split(',')) if (part.trim().toLowerCase() === token) return true;
  return false;
}

const enum Chunk {
  Size,
  Ext,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  Trailer,
  TrailerLf,
  Done,
}

/** Longest chunk-size line (size and extensions) and trailer section accepted. */
const MAX_CHUNK_LINE = 4_096;
const MAX_TRAILERS = 16_384;

/**
 * A streaming reader of a chunked body. `execute` walks the bytes it is given, checking
 * the framing as it goes, and says how many belong to the body; the engine forwards those
 * bytes as they are (the framing is valid, so passing it on is safe) or, with `onData`,
 * takes only the chunk data (to de-chunk for an HTTP/1.0 client).
 */
export class ChunkedDecoder {
  #state = Chunk.Size;
  #size = 0;
  #digits = 0;
  #line = 0;
  #trailerBytes = 0;
  #trailerLine = '';
  /** Chunk data bytes seen so far (the body's decoded size). */
  dataBytes = 0;

  /** The last chunk and its trailers have been read. */
  get done(): boolean {
    return this.#state === Chunk.Done;
  }

  /**
   * Reads `buf[start..]`; returns how many of its bytes belong to the body (all of them
   * while it goes on; fewer once it ends — the rest is the next message). Throws an
   * HttpParseError on bad framing.
   */
  execute(buf: Buffer, start: number, onData?: (buf: Buffer, start: number, end: number) => void): number {
    let i = start;
    const n = buf.length;
    while (i < n) {
      switch (this.#state) {
        case Chunk.Size: {
          const c = buf[i] as number;
          const v = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
          if (v >= 0) {
            if (++this.#digits > 12) throw bad('HPE_INVALID_CHUNK_SIZE', 'a chunk size is too large');
            this.#size = this.#size * 16 + v;
            i++;
            break;
          }
          if (this.#digits === 0) throw bad('HPE_INVALID_CHUNK_SIZE', 'a chunk size is not hexadecimal');
          if (c === 13) {
            this.#state = Chunk.SizeLf;
            i++;
          } else if (c === 59 /* ; */) {
            this.#state = Chunk.Ext;
            i++;
          } else throw bad('HPE_INVALID_CHUNK_SIZE', 'a chunk size is not hexadecimal');
          break;
        }
        case Chunk.Ext: {
          const c = buf[i] as number;
          if (c === 13) this.#state = Chunk.SizeLf;
          else if (c < 32 ? c !== 9 : c === 127) throw bad('HPE_INVALID_CHUNK_SIZE', 'a chunk extension has a control character');
          if (++this.#line > MAX_CHUNK_LINE) throw bad('HPE_INVALID_CHUNK_SIZE', 'a chunk extension is too long');
          i++;
          break;
        }
        case Chunk.SizeLf:
          if (buf[i] !== 10) throw bad('HPE_STRICT', 'a chunk size line does not end in CRLF');
          i++;
          this.#line = 0;
          this.#digits = 0;
          if (this.#size === 0) {
            this.#state = Chunk.Trailer;
            this.#trailerLine = '';
          } else this.#state = Chunk.Data;
          break;
        case Chunk.Data: {
          const take = Math.min(this.#size, n - i);
          if (onData !== undefined) onData(buf, i, i + take);
          this.dataBytes += take;
          this.#size -= take;
          i += take;
          if (this.#size === 0) this.#state = Chunk.DataCr;
          break;
        }
        case Chunk.DataCr:
          if (buf[i] !== 13) throw bad('HPE_STRICT', 'chunk data does not end in CRLF');
          this.#state = Chunk.DataLf;
          i++;
          break;
        case Chunk.DataLf:
          if (buf[i] !== 10) throw bad('HPE_STRICT', 'chunk data does not end in CRLF');
          this.#state = Chunk.Size;
          i++;
          break;
        case Chunk.Trailer: {
          // Trailer lines up to the blank line, each checked like a header line.
          const c = buf[i] as number;
          i++;
          if (++this.#trailerBytes > MAX_TRAILERS) throw bad('HPE_HEADER_OVERFLOW', 'the trailer section is too large', 431);
          if (c === 13) {
            this.#state = Chunk.TrailerLf;
            break;
          }
          if (c === 10) throw bad('HPE_STRICT', 'a trailer line does not end in CRLF');
          this.#trailerLine += String.fromCharCode(c);
          break;
        }
        case Chunk.TrailerLf:
          if (buf[i] !== 10) throw bad('HPE_STRICT', 'a trailer line does not end in CRLF');
          i++;
          if (this.#trailerLine === '') {
            this.#state = Chunk.Done;
            return i - start;
          }
          parseFields(this.#trailerLine, 0, [], 100);
          this.#trailerLine = '';
          this.#state = Chunk.Trailer;
          break;
        case Chunk.Done:
          return i - start;
      }
    }
    return i - start;
  }
}

/** `HTTP/1.1 <status> <reason>\r\n` for every status, made once. */
const STATUS_LINES = new Map<number, string>();

export function statusLine(status: number, reasons: Readonly<Record<number, string | undefined>>): string {
  let line = STATUS_LINES.get(status);
  if (line === undefined) {
    line = `HTTP/1.1 ${status} ${reasons[status] ?? 'Unknown'}\r\n`;
    if (STATUS_LINES.size < 1_000) STATUS_LINES.set(status, line);
  }
  return line;
}

/** Wraps data as one chunk of a chunked body. */
export function chunkOf(data: Buffer): Buffer[] {
  return [Buffer.from(`${data.length.toString(16)}\r\n`, 'latin1'), data, Buffer.from('\r\n', 'latin1')];
}
