// Value parsers for command-line options: each returns the value or throws
// commander's InvalidArgumentError, which the parser turns into
// `keel <command>: option '--x <n>' argument 'y' is invalid. <why>` and exit 2.
import { InvalidArgumentError } from 'commander';

export function positiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a positive integer`);
    return n;
  };
}

export function nonNegativeInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer`);
    return n;
  };
}

export function intAtLeast(name: string, min: number, max?: number) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isInteger(n) || n < min || (max !== undefined && n > max)) throw new InvalidArgumentError(`${name} needs an integer ${max !== undefined ? `in [${min}, ${max}]` : `≥ ${min}`}`);
    return n;
  };
}

export function positiveNumber(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive number`);
    return n;
  };
}

export function nonNegativeNumber(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative number`);
    return n;
  };
}

/** A finite number, kept as the string given (for commands that read raw values). */
export function finiteString(name: string) {
  return (v: string): string => {
    if (v.trim() === '' || !Number.isFinite(Number(v))) throw new InvalidArgumentError(`${name}: not a number: ${v}`);
    return v;
  };
}

/** A comma-separated list whose items are in `allowed` (when given); kept as the string given. */
export function listOf(name: string, allowed?: readonly string[]) {
  return (v: string): string => {
    const items = v.split(',').map((s) => s.trim()).filter(Boolean);
    if (items.length === 0) throw new InvalidArgumentError(`${name}: give at least one value${allowed ? ` (${allowed.join(', ')})` : ''}`);
    if (allowed) for (const it of items) if (!allowed.includes(it)) throw new InvalidArgumentError(`${name}: unknown '${it}' (${allowed.join(', ')})`);
    return v;
  };
}
