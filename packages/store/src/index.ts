/**
 * @lanes/store: the admin database (desired state, observed state, events, API tokens)
 * over PostgreSQL, PGlite embedded by default. Only the control plane imports it.
 */
export { openStore, Store, type OpenStoreOptions, type StoreLogger, type CreatedRelease, type ListEventsOptions } from './store.js';
export { migrationNames } from './migrations.js';
export type {
  Change,
  ChangeKind,
  Desired,
  EgressEntry,
  Environment,
  Event,
  InstanceRow,
  Lane,
  Phase,
  Release,
  RunState,
  RunStates,
  ReleaseStatus,
  Tenant,
  Token,
  TokenRole,
  Zone,
} from './types.js';
