/**
 * The files the gateway keeps in its state directory (written with @lanes/runtime's atomic
 * writes, so a crash never leaves half a routing table or half a ready file behind).
 */
export const TABLE_FILE = 'routing-table.json';
export const READY_FILE = 'gateway.json';
export const ACCESS_LOG_FILE = 'access.log';
