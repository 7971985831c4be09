import { randomBytes, randomInt } from 'node:crypto';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

/** Lowercase letters and digits from a cryptographic source. */
export function randomId(length: number): string {
  let id = '';
  for (let i = 0; i < length; i++) id += ALPHABET[randomInt(ALPHABET.length)];
  return id;
}

export const generateName = () => `db-${randomId(8)}`;
export const generateDbName = () => `pg_${randomId(10)}`;
export const generateUser = () => `u_${randomId(10)}`;
/** 256 random bits, URL-safe so the connection string needs no escaping. */
export const generatePassword = () => randomBytes(32).toString('base64url');
