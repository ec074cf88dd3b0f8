// Containers: Sequential (children named '0', '1', ... as in PyTorch, or by
// the keys of an object), ModuleList and ModuleDict. Children live in own
// fields so that Module's discovery finds them in order.
import { scope } from '../core/memory.js';
import type { Tensor } from '../core/tensor.js';
import { Module } from './module.js';

function setChild(owner: Module, name: string, m: Module): void {
  if (!(m instanceof Module)) throw new TypeError(`${owner.constructor.name}: entry '${name}' is not a Module`);
  if (name === '' || name.includes('.') || name.startsWith('_') || name in owner) {
    throw new RangeError(`${owner.constructor.name}: '${name}' cannot name a child module (empty, dotted, '_'-prefixed or taken)`);
  }
  (owner as unknown as Record<string, Module>)[name] = m;
}

/**
 * Runs its children in order, each on the previous one's output. Tensors made
 * in between are freed once the next child has used them (autograd keeps what
 * backward needs); a forward hook that wants one later must keep() it.
 */
export class Sequential extends Module {
  constructor(...modules: Module[] | [Record<string, Module>]) {
    super();
    const first = modules[0];
    if (modules.length === 1 && !(first instanceof Module) && typeof first === 'object' && first !== null) {
      for (const [name, m] of Object.entries(first)) setChild(this, name, m);
    } else {
      (modules as Module[]).forEach((m, i) => setChild(this, String(i), m));
    }
  }

  get length(): number {
    return this.namedChildren().length;
  }

  /** The i-th child (negative counts from the end). */
  get(i: number): Module {
    const list = this.children();
    const m = list[i < 0 ? list.length + i : i];
    if (m === undefined) throw new RangeError(`Sequential: index ${i} out of range for ${list.length} modules`);
    return m;
  }

  /** Adds a module at the end, named by its index. */
  append(m: Module): this {
    setChild(this, String(this.length), m);
    return this;
  }

  [Symbol.iterator](): Iterator<Module> {
    return this.children()[Symbol.iterator]();
  }

  /** The first child gets every input, each next one its predecessor's output. */
  forward(x: Tensor, ...rest: unknown[]): Tensor {
    const children = this.children();
    if (children.length === 0) return x;
    return scope(() => {
      let y = children[0].call(x, ...rest) as Tensor;
      for (let i = 1; i < children.length; i++) y = children[i].call(y) as Tensor;
      return y;
    });
  }
}

/** Holds modules by index (their parameters are the owner's); not callable. */
export class ModuleList extends Module {
  constructor(modules: Iterable<Module> = []) {
    super();
    for (const m of modules) this.append(m);
  }

  get length(): number {
    return this.namedChildren().length;
  }

  get(i: number): Module {
    const list = this.children();
    const m = list[i < 0 ? list.length + i : i];
    if (m === undefined) throw new RangeError(`ModuleList: index ${i} out of range for ${list.length} modules`);
    return m;
  }

  append(m: Module): this {
    setChild(this, String(this.length), m);
    return this;
  }

  [Symbol.iterator](): Iterator<Module> {
    return this.children()[Symbol.iterator]();
  }

  forward(): never {
    throw new Error('ModuleList is not callable: iterate over it in the owner\'s forward');
  }
}

/** Holds modules by name, in insertion order; not callable. */
export class ModuleDict extends Module {
  constructor(modules: Record<string, Module> = {}) {
    super();
    for (const [k, m] of Object.entries(modules)) setChild(this, k, m);
  }

  get(name: string): Module {
    const m = this.namedChildren().find(([k]) => k === name);
    if (!m) throw new RangeError(`ModuleDict: no module named '${name}'`);
    return m[1];
  }

  set(name: string, m: Module): this {
    setChild(this, name, m);
    return this;
  }

  keys(): string[] {
    return this.namedChildren().map(([k]) => k);
  }

  forward(): never {
    throw new Error('ModuleDict is not callable: look modules up in the owner\'s forward');
  }
}
