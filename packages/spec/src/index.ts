export * from './errors.js';
export * from './names.js';
export * from './command.js';
export * from './duration.js';
export * from './manifest.js';
export type * from './protocol.js';
export * from './placement.js';
export * from './reconcile.js';
