/**
 * The engine's HTTP/1.1 framing: what it accepts, what it refuses (and with which status),
 * and the chunked reader fed the same body cut at every possible point.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  ChunkedDecoder,
  findHeadEnd,
  hasBadLineEnding,
  hasToken,
  HttpParseError,
  parseContentLength,
  parseRequestHead,
  parseResponseHead,
  readTransferEncoding,
} from './http1.js';

function refused(fn: () => unknown, status: number, code?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof HttpParseError, `an HttpParseError, got ${String(err)}`);
    assert.equal(err.status, status, err.message);
    if (code) assert.match(err.code, code);
    return true;
  });
}

describe('request heads', () => {
  it('reads the request line and the headers, values without surrounding blanks, names as sent', () => {
    const h = parseRequestHead('GET /a?b=1 HTTP/1.1\r\nHost: x.test\r\nX-Pad:   spaced value \t\r\nEmpty:');
    assert.equal(h.method, 'GET');
    assert.equal(h.url, '/a?b=1');
    assert.equal(h.httpVersion, '1.1');
    assert.deepEqual(h.rawHeaders, ['Host', 'x.test', 'X-Pad', 'spaced value', 'Empty', '']);
    assert.equal(parseRequestHead('POST http://x.test/p HTTP/1.0').httpVersion, '1.0');
  });

  it('keeps bytes of 0x80-0xff in values and targets as they are (latin1 in, latin1 out)', () => {
    const h = parseRequestHead('GET /caf\xc3\xa9 HTTP/1.1\r\nX-Name: \xc3\xa9t\xc3\xa9');
    assert.equal(h.url, '/caf\xc3\xa9');
    assert.equal(h.rawHeaders[1], '\xc3\xa9t\xc3\xa9');
  });

  const bad: Array<[string, string, number]> = [
    ['a missing version', 'GET /', 400],
    ['a lower-case version', 'GET / http/1.1', 400],
    ['HTTP/2.0', 'GET / HTTP/2.0', 400],
    ['a blank in the target', 'GET /a b HTTP/1.1', 400],
    ['two blanks after the method', 'GET  / HTTP/1.1', 400],
    ['a method with a slash', 'G/T / HTTP/1.1', 400],
    ['obs-fold', 'GET / HTTP/1.1\r\nX-A: b\r\n c', 400],
    ['a blank before the colon', 'GET / HTTP/1.1\r\nHost : x', 400],
    ['a header without a colon', 'GET / HTTP/1.1\r\nHost', 400],
    ['a NUL in a value', 'GET / HTTP/1.1\r\nX: a\x00b', 400],
    ['a bare CR in a value', 'GET / HTTP/1.1\r\nX: a\rb', 400],
    ['a bare LF in a value', 'GET / HTTP/1.1\r\nX: a\nb', 400],
    ['DEL in a value', 'GET / HTTP/1.1\r\nX: a\x7fb', 400],
    ['an empty header name', 'GET / HTTP/1.1\r\n: b', 400],
  ];
  for (const [name, text, status] of bad) {
    it(`refuses ${name} with ${status}`, () => refused(() => parseRequestHead(text), status, /^HPE_/));
  }

  it('answers 431 to more header lines than allowed', () => {
    const text = `GET / HTTP/1.1${'\r\nX: y'.repeat(11)}`;
    refused(() => parseRequestHead(text, 10), 431);
    assert.equal(parseRequestHead(text, 11).rawHeaders.length, 22);
  });

  it('finds the end of a head, and sees a wrong line ending before the head is complete', () => {
    const b = Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\nrest');
    assert.equal(findHeadEnd(b, 0), 23);
    assert.equal(findHeadEnd(Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n'), 0), -1);
    assert.equal(hasBadLineEnding(Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n'), 0), false);
    assert.equal(hasBadLineEnding(Buffer.from('GET / HTTP/1.1\nHost'), 0), true);
    assert.equal(hasBadLineEnding(Buffer.from('GET / HTTP/1.1\rHost'), 0), true);
    assert.equal(hasBadLineEnding(Buffer.from('GET / HTTP/1.1\r'), 0), false, 'a CR at the very end may be followed by its LF');
  });

  it('never fails with anything but an HttpParseError, whatever the bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const text = Buffer.from(bytes).toString('latin1');
        try {
          parseRequestHead(text);
          parseResponseHead(text);
        } catch (err) {
          if (!(err instanceof HttpParseError)) throw err;
        }
      }),
      { numRuns: 2_000 },
    );
  });
});

describe('response heads', () => {
  it('reads the status, the version and the headers; 1xx and a missing reason are fine', () => {
    const r = parseResponseHead('HTTP/1.1 201 Created\r\nContent-Length: 3');
    assert.deepEqual([r.status, r.httpVersion, r.rawHeaders], [201, '1.1', ['Content-Length', '3']]);
    assert.equal(parseResponseHead('HTTP/1.0 204').status, 204);
    assert.equal(parseResponseHead('HTTP/1.1 103 Early Hints\r\nLink: </a.css>').status, 103);
  });

  it('refuses what is not an HTTP/1.x answer with the code llhttp uses', () => {
    refused(() => parseResponseHead('SMTP ready'), 502, /HPE_INVALID_CONSTANT/);
    refused(() => parseResponseHead('HTTP/1.1 2000 OK'), 502, /HPE_INVALID_STATUS/);
    refused(() => parseResponseHead('HTTP/1.1 abc OK'), 502, /HPE_INVALID_STATUS/);
    refused(() => parseResponseHead('HTTP/1.2 200 OK'), 502, /HPE_INVALID_VERSION/);
    refused(() => parseResponseHead('HTTP/1.1 200 OK\r\nX: a\x01'), 400, /HPE_INVALID_HEADER_TOKEN/);
  });
});

describe('framing values', () => {
  it('reads a Content-Length of digits only', () => {
    assert.equal(parseContentLength('0'), 0);
    assert.equal(parseContentLength('1234'), 1234);
    for (const v of ['', '+5', '-1', '5, 5', ' 5', '5 ', '0x10', '1e3', '9'.repeat(16)]) assert.equal(parseContentLength(v), null, v);
  });

  it('accepts Transfer-Encoding chunked alone, refuses chunked before another coding, and does not support the rest', () => {
    assert.equal(readTransferEncoding('chunked'), 'chunked');
    assert.equal(readTransferEncoding('Chunked'), 'chunked');
    assert.equal(readTransferEncoding('chunked, identity'), 'not-last');
    assert.equal(readTransferEncoding('gzip, chunked'), 'unsupported');
    assert.equal(readTransferEncoding('xchunked'), 'unsupported');
  });

  it('finds a token in a comma-separated list, whatever its case', () => {
    assert.equal(hasToken('close', 'close'), true);
    assert.equal(hasToken('Keep-Alive, Upgrade', 'upgrade'), true);
    assert.equal(hasToken('closed', 'close'), false);
  });
});

/** A chunked encoding of `parts` with optional extensions and trailers. */
function encode(parts: readonly string[], ext = '', trailers = ''): Buffer {
  let out = '';
  for (const p of parts) if (p.length > 0) out += `${Buffer.byteLength(p).toString(16)}${ext}\r\n${p}\r\n`;
  return Buffer.from(`${out}0${ext}\r\n${trailers}\r\n`);
}

describe('chunked bodies', () => {
  it('reads a body to its end and leaves what follows, counting the data bytes', () => {
    const body = encode(['hello', ' world']);
    const d = new ChunkedDecoder();
    const buf = Buffer.concat([body, Buffer.from('GET /next HTTP/1.1\r\n')]);
    const data: string[] = [];
    assert.equal(d.execute(buf, 0, (b, s, e) => data.push(b.toString('latin1', s, e))), body.length);
    assert.equal(d.done, true);
    assert.equal(d.dataBytes, 11);
    assert.equal(data.join(''), 'hello world');
  });

  it('reads the same body however it is cut into pieces, with extensions and trailers', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ maxLength: 40 }), { maxLength: 6 }), fc.boolean(), fc.array(fc.nat(), { maxLength: 8 }), (parts, withExtras, cuts) => {
        const body = encode(parts, withExtras ? ';a=b' : '', withExtras ? 'X-Sum: 1\r\n' : '');
        const points = [...new Set(cuts.map((c) => c % (body.length + 1)))].sort((a, b) => a - b);
        const d = new ChunkedDecoder();
        let used = 0;
        let from = 0;
        const seen: Buffer[] = [];
        for (const to of [...points, body.length]) {
          const piece = body.subarray(from, to);
          used += d.execute(piece, 0, (b, s, e) => seen.push(b.subarray(s, e)));
          from = to;
        }
        assert.equal(used, body.length);
        assert.equal(d.done, true);
        assert.equal(Buffer.concat(seen).toString(), parts.join(''));
        assert.equal(d.dataBytes, Buffer.byteLength(parts.join('')));
      }),
      { numRuns: 500 },
    );
  });

  const bad: Array<[string, string]> = [
    ['a size that is not hexadecimal', 'g\r\nx\r\n0\r\n\r\n'],
    ['an empty size', '\r\nx\r\n0\r\n\r\n'],
    ['a blank before the size line ends', '5 \r\nhello\r\n0\r\n\r\n'],
    ['a bare LF after the size', '5\nhello\r\n0\r\n\r\n'],
    ['data longer than its size', '3\r\nhello\r\n0\r\n\r\n'],
    ['a control character in an extension', '5;a\x01\r\nhello\r\n0\r\n\r\n'],
    ['a size too large to be real', 'fffffffffffff\r\n'],
    ['a trailer line ending in a bare LF', '0\r\nX: 1\n\r\n'],
    ['a malformed trailer', '0\r\nno colon here\r\n\r\n'],
  ];
  for (const [name, text] of bad) {
    it(`refuses ${name}`, () => refused(() => new ChunkedDecoder().execute(Buffer.from(text, 'latin1'), 0), 400, /^HPE_/));
  }
});
