/**
 * @lanes/dns: the platform's authoritative DNS server. Answers for the platform domain
 * from the zone the control plane streams (`GET /v1/dns/watch`), with health-checked
 * failover records. The process entry is `./main` (dist/main.js).
 */
export { answerQuestion, recordsAt, soaRecord, QTYPE, QCLASS, RCODE, SOA_TIMERS, type Answer, type Question, type Rcode, type ResourceRecord, type ActiveTarget } from './answer.js';
export { Authority, type AuthorityOptions } from './authority.js';
export { HealthChecker, probe, type HealthCheckerOptions, type ProbeResult } from './checker.js';
export { parseConfig, type DnsConfig } from './config.js';
export { FailoverState, choose, observe, targetKey, INITIAL_HEALTH, type Choice, type Role, type TargetHealth, type Transition } from './failover.js';
export { createLogger, silentLogger, type Logger, type LogLevel } from './logging.js';
export { READY_FILE, ZONE_FILE } from './persist.js';
export { DnsServer, DEFAULT_DNS_LIMITS, type DnsLimits, type DnsServerOptions, type DnsStats } from './server.js';
export { ZoneWatcher, decideAndApply, tokenFromFile, type ZoneSink, type ZoneWatcherOptions, type ZoneDecision } from './watch.js';
export { parseQuery, encodeResponse, headerOnly, udpLimit, type ParsedQuery, type Edns } from './wire.js';
export { buildZone, validateSnapshot, isDnsName, inZone, canonicalIPv6, NS_LABEL, MAX_ADDRESSES, type Zone } from './zone.js';
