/** @lanes/network: private networks (VPCs) per environment on one Linux host; see README.md. */
export {
  DEFAULT_PLATFORM_CIDR,
  DEFAULT_PREFIX,
  MAX_ZONES,
  SLOTS_PER_ZONE,
  allocateAddress,
  egressAddress,
  instanceAddress,
  instanceNames,
  maxEnvironments,
  planEnvironment,
  zoneOfAddress,
} from './plan.js';
export type { EnvironmentPlan, InstanceNames, PlanOptions, ZonePlan } from './plan.js';
export { CLOSED_POLICY, checkEgress, checkSecurityGroups, ingressPolicy } from './rules.js';
export type { EgressRule, IngressPolicy, SecurityGroupRule } from './rules.js';
export { CommandError, argv, execArgv, runCommand } from './commands.js';
export type { Argv, ExecOptions, RunOptions, Runner } from './commands.js';
export { NetworkManager } from './manager.js';
export type { InstanceRecord, InstanceSpec, NetworkManagerOptions, NetworkObjects } from './manager.js';
export { detectIsolation } from './detect.js';
export type { Isolation } from './detect.js';
