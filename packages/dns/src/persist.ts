/**
 * The files the DNS server keeps in its state directory (written with @lanes/runtime's
 * atomic writes): the last accepted zone (`zone.json`), so names keep resolving across a
 * restart while the control plane is away, and the ready file (`dns.json`).
 */
export const ZONE_FILE = 'zone.json';
export const READY_FILE = 'dns.json';
