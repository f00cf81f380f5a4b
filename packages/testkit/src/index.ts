/**
 * Test support shared by every package's tests: free ports, temporary directories,
 * waiting for a condition, and a throwaway PostgreSQL cluster from Debian's binaries.
 * Test-only: no production package imports it.
 */
export { freePort, tempDir, waitFor, sleep, killTree, isAlive, descendants } from './util.js';
export { startPostgres, findPostgresBin, type ThrowawayPostgres } from './postgres.js';
