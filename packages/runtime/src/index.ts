/**
 * @lanes/runtime — I/O plumbing the long-running components share (spec has no I/O by
 * design): atomic state files and a writer that keeps only the newest pending content.
 */
export { LatestWriter, readJsonFile, writeFileAtomic } from './files.js';
