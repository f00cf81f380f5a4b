/**
 * @lanes/store: the admin database (desired state, observed state, events, API tokens)
 * over PostgreSQL, PGlite embedded by default. Only the control plane imports it.
 */
export { openStore, Store, type OpenStoreOptions, type StoreLogger, type CreatedRelease, type ListEventsOptions } from './store.js';
export { migrationNames } from './migrations.js';
export type {
  CertificateSource,
  Change,
  DatabaseMember,
  StoredDatabase,
  ChangeKind,
  Desired,
  DnsRecord,
  EgressEntry,
  Environment,
  Event,
  InstanceRow,
  Lane,
  Phase,
  Release,
  RunState,
  RunStates,
  StoredCertificate,
  ReleaseStatus,
  TcpListener,
  Tenant,
  Token,
  TokenRole,
  Zone,
} from './types.js';
