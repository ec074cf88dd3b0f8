// Deterministic memory: tensors are freed by dispose() or by the scope that made
// them, never by waiting for the GC (finalizers do not run inside a synchronous
// loop: DESIGN.md measured +525 MB over 1e6 calls and zero finalizers). A
// FinalizationRegistry frees what escapes every scope, as a safety net only.
//
// A loop that never disposes (PyTorch's habit: the GC frees there) grows
// the live tensors outside every scope without a word; the leak watch below
// says so once, naming the creation sites that hold the most. It costs a
// counter per tensor that outlives its scope until growth is seen: it looks
// at the count once every 1,024 such tensors, and captures
// creation sites (a stack trace a tensor, for the next 4,096 tensors) only
// after growth was seen, or from the start under KEEL_DEBUG=1.
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
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

const safetyNet = new FinalizationRegistry<Handle>((id) => {
  native.free(id);
  outsideLive--;
  if (origins !== undefined) origins.delete(id);
});

// ---------------------------------------------------------------- leak watch

/** Live tensors registered with the safety net: made outside every scope, or kept. */
let outsideLive = 0;
/** Creation site by handle, while capturing. */
let origins: Map<Handle, string> | undefined;
const DEBUG = process.env.KEEL_DEBUG === '1' || process.env.KEEL_DEBUG === 'true';
let capturing = DEBUG;
/** Stack traces left to take once growth was seen (bounded: the watch must not slow a loop down). */
let captureBudget = 0;
if (capturing) origins = new Map();
let warned = false;
let registeredSinceCheck = 0;
let checks = 0;
let windowMin = Infinity;
const floors: number[] = [];
const CHECK_EVERY = 1024;
const CHECKS_PER_WINDOW = 4;
const GROWING_WINDOWS = 4;

/** The leak watch's thresholds (tests make them small). @internal */
export const leakWatch = {
  /** No warning below this many live tensors outside scopes. */
  minLive: 10_000,
  /** Where the warning goes (process.emitWarning by default). */
  emit: (message: string) => process.emitWarning(message, { code: 'KEEL_TENSOR_LEAK' }),
  /** Forget what was seen (and warn again). @internal */
  reset(): void {
    warned = false;
    checks = 0;
    windowMin = Infinity;
    floors.length = 0;
    registeredSinceCheck = 0;
  },
};

const KEEL_DIST = dirname(dirname(fileURLToPath(import.meta.url)));

/** The first stack frame outside Keel: where user code made a tensor. */
function creationSite(): string {
  const holder: { stack?: string } = {};
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 24;
  Error.captureStackTrace(holder, creationSite);
  Error.stackTraceLimit = limit;
  const lines = (holder.stack ?? '').split('\n').slice(1);
  for (const line of lines) {
    if (line.includes(KEEL_DIST) || line.includes('(node:') || line.includes(' node:') || line.includes('(<anonymous>)')) continue;
    return line.trim().replace(/^at /, '');
  }
  return 'inside Keel';
}

function capture(id: Handle): void {
  origins!.set(id, creationSite());
  if (!DEBUG && --captureBudget <= 0) capturing = false;
}

function topOrigins(n: number): [string, number][] {
  const counts = new Map<string, number>();
  if (origins !== undefined) for (const o of origins.values()) counts.set(o, (counts.get(o) ?? 0) + 1);
  return [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, n);
}

/** Looks at the outside-scope count every CHECK_EVERY registrations with the safety net; growth = its floor rose in each of the last windows. */
function watchGrowth(): void {
  registeredSinceCheck = 0;
  if (warned) return;
  windowMin = Math.min(windowMin, outsideLive);
  if (++checks % CHECKS_PER_WINDOW !== 0) return;
  floors.push(windowMin);
  windowMin = Infinity;
  if (floors.length > GROWING_WINDOWS) floors.shift();
  const growing = floors.length === GROWING_WINDOWS && floors.every((f, i) => i === 0 || f > floors[i - 1]) && outsideLive >= leakWatch.minLive;
  if (!growing) return;
  if (origins === undefined) {
    // growth seen: from now on, note where each new outside-scope tensor is made; warn when the next window grows too
    capturing = true;
    captureBudget = CHECKS_PER_WINDOW * CHECK_EVERY;
    origins = new Map();
    return;
  }
  if (origins !== undefined && origins.size === 0) return;
  warned = true;
  if (!DEBUG) capturing = false;
  const top = topOrigins(3);
  const growth = floors[floors.length - 1] - floors[0];
  leakWatch.emit(
    `${outsideLive} tensors are live outside any keel.scope and the count keeps growing (+${growth} over the last ${(GROWING_WINDOWS - 1) * CHECKS_PER_WINDOW * CHECK_EVERY} made); `
    + `most were made at ${top.length > 0 ? top.map(([o, c]) => `${o} (${c})`).join(', ') : 'sites not yet known (KEEL_DEBUG=1 records them from the start)'}. `
    + 'Wrap each step in keel.scope(() => ...) or dispose() what you no longer need; keel.memory().byOrigin counts them by site.',
  );
}

// Every open scope's tensors on one stack: scope k owns held[bases[k] .. top)
// (the innermost, [bases[last], top)). One array for all scopes, grown once
// and reused, slots cleared as they are freed: tracking a tensor is a store
// and an increment, and a scope allocates nothing per tensor.
const held: (Tracked | undefined)[] = [];
let top = 0;
const bases: number[] = [];
/** Above this, an emptied stack gives its memory back. */
const HELD_KEEP = 1 << 20;

// Tensors made outside every scope join the safety net in batches: one made
// and disposed in between (the common case in a loop) never pays for
// register + unregister (~0.27 µs a tensor, measured). Until its batch is
// flushed the pending list holds it strongly, which changes nothing: the GC
// could not run its finalizer inside the synchronous code that made it anyway.
// (an array of fixed use: `length = 0` would drop its backing store and
// regrow it every batch)
const pending: (Tracked | undefined)[] = [];
let pendingCount = 0;
const PENDING_BATCH = 1024;
let flushScheduled = false;

function flushPending(): void {
  flushScheduled = false;
  // (tensors made while registering, by a leak warning's listener, join this pass)
  for (let i = 0; i < pendingCount; i++) {
    const t = pending[i];
    pending[i] = undefined;
    if (t !== undefined) register(t);
  }
  pendingCount = 0;
}

/** Called by every new tensor: the innermost scope owns it. */
export function track(t: Tracked): void {
  if (bases.length > 0) {
    if (top < held.length) held[top] = t;
    else held.push(t);
    top++;
    return;
  }
  trackUnscoped(t);
}

/** For a tensor owned by another object (a parameter's gradient): no scope frees it, only dispose() or the safety net. */
export function trackUnscoped(t: Tracked): void {
  if (pendingCount < pending.length) pending[pendingCount] = t;
  else pending.push(t);
  pendingCount++;
  if (capturing) capture(t._id);
  if (pendingCount >= PENDING_BATCH) flushPending();
  else if (!flushScheduled) {
    flushScheduled = true;
    queueMicrotask(flushPending);
  }
}

function register(t: Tracked): void {
  if (!t._registered && t._id >= 0) {
    safetyNet.register(t, t._id, t);
    t._registered = true;
    outsideLive++;
    // a tensor returned out of a scope: the stack here is the user's call that got it
    if (capturing && !origins!.has(t._id)) capture(t._id);
    if (++registeredSinceCheck >= CHECK_EVERY) watchGrowth();
  }
}

export function disposeTracked(t: Tracked): void {
  if (t._owned !== undefined) {
    disposeTracked(t._owned);
    t._owned = undefined;
  }
  if (t._id < 0) return;
  native.free(t._id);
  if (origins !== undefined) origins.delete(t._id);
  t._id = -1;
  if (t._registered) {
    safetyNet.unregister(t);
    t._registered = false;
    outsideLive--;
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
  const base = top;
  bases.push(base);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    bases.pop();
    release(base, undefined, false);
    throw e;
  }
  bases.pop();
  if (result instanceof Promise) {
    release(base, undefined, false);
    throw new TypeError('scope(fn): fn must be synchronous (it returned a Promise); its tensors were freed');
  }
  let returned: Set<unknown> | undefined;
  if (result !== null && typeof result === 'object') {
    returned = new Set<unknown>();
    collectReturned(result, returned);
  }
  release(base, returned, bases.length > 0);
  return result;
}

/**
 * Ends the scope owning held[base .. top): frees its tensors, newest first,
 * except kept ones and those returned, which move down to the enclosing
 * scope's part of the stack (toParent) or join the safety net.
 */
function release(base: number, returned: Set<unknown> | undefined, toParent: boolean): void {
  const end = top;
  let up: Tracked[] | undefined;
  // newest first: glibc then frees chunks next to the top of its heap (cheaper than oldest first)
  for (let i = end - 1; i >= base; i--) {
    const t = held[i]!;
    held[i] = undefined;
    if (t._id < 0 || t._kept) continue;
    if (returned !== undefined && returned.has(t)) {
      if (toParent) (up ??= []).push(t);
      else register(t);
    } else {
      disposeTracked(t);
    }
  }
  // what the enclosing scope now owns: the returned tensors, and any made
  // while freeing (a release callback's) above `end`
  let moved = base;
  if (up !== undefined) for (let j = up.length - 1; j >= 0; j--) held[moved++] = up[j];
  for (let j = end; j < top; j++, moved++) {
    if (moved === j) continue;
    held[moved] = held[j];
    held[j] = undefined;
  }
  top = moved;
  if (top === 0 && held.length > HELD_KEEP) held.length = 0;
}

/**
 * Live tensors and their bytes, as the addon counts them; `outsideScopes`,
 * those made outside every scope (or kept) still alive; `byOrigin`, those by
 * the line of user code that made them, most first, once creation sites are
 * recorded (KEEL_DEBUG=1, or after the leak watch saw the count grow;
 * otherwise empty).
 */
export function memory(): { tensors: number; bytes: number; outsideScopes: number; byOrigin: Record<string, number> } {
  return { ...native.memory(), outsideScopes: outsideLive, byOrigin: Object.fromEntries(topOrigins(Infinity)) };
}
