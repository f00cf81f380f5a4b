/**
 * Instance log files: size-capped rotation on (re)start, reading the last N lines, and
 * following appended lines by polling (survives the file being rotated underneath).
 */
import { open, stat } from 'node:fs/promises';
import { renameSync, statSync } from 'node:fs';

/** Lines longer than this are cut, so one runaway line cannot grow memory without bound. */
const MAX_LINE_CHARS = 64 * 1024;

/** Renames `file` to `file.1` (replacing an older `.1`) when it has reached `maxBytes`. */
export function rotateIfLarge(file: string, maxBytes: number): void {
  try {
    if (statSync(file).size >= maxBytes) renameSync(file, `${file}.1`);
  } catch {
    /* no file yet */
  }
}

function splitLines(text: string): string[] {
  return text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l).slice(0, MAX_LINE_CHARS));
}

export async function fileSize(file: string): Promise<number> {
  try {
    return (await stat(file)).size;
  } catch {
    return 0;
  }
}

/**
 * The last `lines` lines of `file` before byte `endOffset`, reading at most `maxBytes`
 * from the end. A missing file has no lines.
 */
export async function readTail(file: string, lines: number, endOffset: number, maxBytes = 4 * 1024 * 1024): Promise<string[]> {
  if (lines <= 0 || endOffset <= 0) return [];
  let handle;
  try {
    handle = await open(file, 'r');
  } catch {
    return [];
  }
  try {
    const chunkBytes = 64 * 1024;
    const chunks: Buffer[] = [];
    let pos = endOffset;
    let newlines = 0;
    let read = 0;
    // Read backwards until there are enough newlines (one more than lines: the first may be partial).
    while (pos > 0 && newlines <= lines && read < maxBytes) {
      const len = Math.min(chunkBytes, pos);
      pos -= len;
      const buf = Buffer.alloc(len);
      const { bytesRead } = await handle.read(buf, 0, len, pos);
      const got = buf.subarray(0, bytesRead);
      chunks.unshift(got);
      read += bytesRead;
      for (const b of got) if (b === 0x0a) newlines += 1;
    }
    let text = Buffer.concat(chunks).toString('utf8');
    if (text.endsWith('\n')) text = text.slice(0, -1);
    if (text.length === 0) return [];
    let all = splitLines(text);
    // Drop a partial first line when the read did not start at the beginning of the file.
    if (pos > 0 && all.length > 1) all = all.slice(1);
    return all.slice(-lines);
  } finally {
    await handle.close();
  }
}

export interface FollowOptions {
  readonly file: string;
  readonly fromOffset: number;
  readonly onLine: (line: string) => void;
  /** @default 250 */
  readonly intervalMs?: number;
}

/** Polls `file` for appended bytes and calls onLine per complete line; returns a stop function. */
export function followFile(opts: FollowOptions): () => void {
  let offset = opts.fromOffset;
  let ino: number | null = null;
  let partial = '';
  let stopped = false;
  let busy = false;
  const poll = async (): Promise<void> => {
    if (busy || stopped) return;
    busy = true;
    try {
      let st;
      try {
        st = await stat(opts.file);
      } catch {
        return;
      }
      if ((ino !== null && st.ino !== ino) || st.size < offset) {
        // Rotated or truncated: the new file is read from its start.
        offset = 0;
        partial = '';
      }
      ino = st.ino;
      if (st.size <= offset) return;
      const handle = await open(opts.file, 'r');
      try {
        const len = Math.min(st.size - offset, 1024 * 1024);
        const buf = Buffer.alloc(len);
        const { bytesRead } = await handle.read(buf, 0, len, offset);
        offset += bytesRead;
        const text = partial + buf.subarray(0, bytesRead).toString('utf8');
        const parts = splitLines(text);
        partial = parts.pop() ?? '';
        if (partial.length >= MAX_LINE_CHARS) {
          parts.push(partial);
          partial = '';
        }
        for (const line of parts) {
          if (stopped) return;
          opts.onLine(line);
        }
      } finally {
        await handle.close();
      }
    } catch {
      /* transient read errors: try again at the next poll */
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void poll(), opts.intervalMs ?? 250);
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}
