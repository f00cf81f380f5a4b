// Filled in by the store work: a throwaway cluster from Debian's initdb on a free port.
export interface ThrowawayPostgres {
  readonly url: string;
  createDatabase(name: string): Promise<string>;
  stop(): Promise<void>;
}
export function findPostgresBin(): string | null {
  return null;
}
export async function startPostgres(): Promise<ThrowawayPostgres> {
  throw new Error('not implemented yet');
}
