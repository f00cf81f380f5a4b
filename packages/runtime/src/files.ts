/**
 * Small state files of the long-running components (the gateway's routing table, the DNS
 * server's zone, ready files), written atomically (temporary file, fsync, rename) so a
 * crash never leaves half a file behind, and read back tolerating their absence.
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, unlink } from 'node:fs/promises';

/** Writes `data` to `file` so readers see either the old or the new content, never a mix. */
export async function writeFileAtomic(file: string, data: string): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const handle = await open(tmp, 'w', 0o600);
  try {
    await handle.writeFile(data, 'utf8');
    await handle.sync();
  } catch (err) {
    await handle.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await handle.close();
  try {
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

/** The parsed JSON of `file`, or null when it does not exist. Throws on unreadable or broken JSON. */
export async function readJsonFile(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (err instanceof Error && 'code' in err && err.code === 'ENOENT') return null;
    throw err;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new Error(`${file}: not valid JSON`);
  }
}

/**
 * Serialises writes of one file: at most one write runs, and while it runs only the newest
 * pending content is kept (a burst of changes costs two writes, not one per change).
 */
export class LatestWriter {
  readonly #file: string;
  readonly #onError: (err: unknown) => void;
  #pending: string | null = null;
  #running: Promise<void> | null = null;

  constructor(file: string, onError: (err: unknown) => void) {
    this.#file = file;
    this.#onError = onError;
  }

  write(data: string): void {
    this.#pending = data;
    if (this.#running === null) this.#running = this.#drain();
  }

  /** Resolves once everything written so far is on disk (or failed and was reported). */
  async idle(): Promise<void> {
    while (this.#running !== null) await this.#running;
  }

  async #drain(): Promise<void> {
    try {
      while (this.#pending !== null) {
        const data = this.#pending;
        this.#pending = null;
        try {
          await writeFileAtomic(this.#file, data);
        } catch (err) {
          this.#onError(err);
        }
      }
    } finally {
      this.#running = null;
    }
  }
}
