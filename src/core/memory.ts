// Deterministic memory: tensors are freed by dispose() or by the scope that made
// them, never by waiting for the GC (finalizers do not run inside a synchronous
// loop: DESIGN.md measured +525 MB over 1e6 calls and zero finalizers). A
// FinalizationRegistry frees what escapes every scope, as a safety net only.
import { native, type Handle } from '../native/binding.js';

/** What scopes and the safety net need to know of a tensor. */
export interface Tracked {
  /** The native handle, or -1 once disposed. */
  _id: Handle;
  _kept: boolean;
  _registered: boolean;
  /** A handle this one owns (a tensor's gradient handle): freed with it. */
  _owned?: Tracked | undefined;
}

const safetyNet = new FinalizationRegistry<Handle>((id) => native.free(id));
const scopes: Tracked[][] = [];

// Tensors made outside every scope join the safety net in batches: one made
// and disposed in between (the common case in a loop) never pays for
// register + unregister (~0.27 µs a tensor, measured). Until its batch is
// flushed the pending list holds it strongly, which changes nothing: the GC
// could not run its finalizer inside the synchronous code that made it anyway.
const pending: Tracked[] = [];
const PENDING_BATCH = 1024;
let flushScheduled = false;

function flushPending(): void {
  flushScheduled = false;
  for (const t of pending) register(t);
  pending.length = 0;
}

/** Called by every new tensor: the innermost scope owns it. */
export function track(t: Tracked): void {
  const s = scopes.length > 0 ? scopes[scopes.length - 1] : undefined;
  if (s !== undefined) {
    s.push(t);
    return;
  }
  trackUnscoped(t);
}

/** For a tensor owned by another object (a parameter's gradient): no scope frees it, only dispose() or the safety net. */
export function trackUnscoped(t: Tracked): void {
  pending.push(t);
  if (pending.length >= PENDING_BATCH) flushPending();
  else if (!flushScheduled) {
    flushScheduled = true;
    queueMicrotask(flushPending);
  }
}

function register(t: Tracked): void {
  if (!t._registered && t._id >= 0) {
    safetyNet.register(t, t._id, t);
    t._registered = true;
  }
}

export function disposeTracked(t: Tracked): void {
  if (t._owned !== undefined) {
    disposeTracked(t._owned);
    t._owned = undefined;
  }
  if (t._id < 0) return;
  native.free(t._id);
  t._id = -1;
  if (t._registered) {
    safetyNet.unregister(t);
    t._registered = false;
  }
}

/** Keeps a tensor alive past the scope that made it. */
export function keepTracked(t: Tracked): void {
  t._kept = true;
  register(t);
}

function collectReturned(value: unknown, into: Set<unknown>, depth = 0): void {
  if (value === null || typeof value !== 'object' || depth > 8) return;
  if ('_id' in value && '_kept' in value) {
    into.add(value);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) collectReturned(v, into, depth + 1);
  } else if (value instanceof Map) {
    for (const v of value.values()) collectReturned(v, into, depth + 1);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collectReturned(v, into, depth + 1);
  }
}

/**
 * Runs `fn` and frees every tensor it created, except those it returns (in an
 * array, a plain object or a Map) and those passed to `keep()`. Returned
 * tensors belong to the enclosing scope, if any.
 */
export function scope<T>(fn: () => T): T {
  const mine: Tracked[] = [];
  scopes.push(mine);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const t of mine) if (!t._kept) disposeTracked(t);
    throw e;
  }
  scopes.pop();
  if (result instanceof Promise) {
    for (const t of mine) if (!t._kept) disposeTracked(t);
    throw new TypeError('scope(fn): fn must be synchronous (it returned a Promise); its tensors were freed');
  }
  const returned = new Set<unknown>();
  collectReturned(result, returned);
  const parent = scopes.length > 0 ? scopes[scopes.length - 1] : undefined;
  for (const t of mine) {
    if (t._id < 0) continue;
    if (t._kept) continue;
    if (returned.has(t)) {
      if (parent !== undefined) parent.push(t);
      else register(t);
    } else {
      disposeTracked(t);
    }
  }
  return result;
}

/** Live tensors and their bytes, as the addon counts them. */
export function memory(): { tensors: number; bytes: number } {
  return native.memory();
}
