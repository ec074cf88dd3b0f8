#!/usr/bin/python3
# Walks PyTorch's OpInfo database (torch.testing._internal.common_methods_invocations.op_db)
# and writes, for every sample input, the exact ATen overload it resolves to,
# the arguments (values shipped, not regenerated), and the reference results of
# torch.ops.aten.<name>.<overload> on CPU: forward outputs, input gradients for
# a fixed cotangent, and the out= and in-place variants where the schema has
# them. scripts/conformance/replay.mjs replays the cases against Keel.
#
# Run with Debian's /usr/bin/python3 (python3-torch 1.13). op_db imports
# `expecttest`, which Debian lacks: scripts/conformance/stub/ provides a stub;
# put it on PYTHONPATH (scripts/conformance/driver.mjs does), never in the system.
#
#   PYTHONPATH=scripts/conformance/stub /usr/bin/python3 scripts/conformance/opinfo.py \
#       --out cases.json [--subset N] [--max-samples K] [--ops name,name]
#
# JSON values: a tensor is {"T": dtype, "s": shape, "v": flat values} (plus
# "g": 1 when it requires grad); non-finite floats are the strings "nan",
# "inf", "-inf" (inside "v" and as {"f": ...} scalars); dtypes {"dtype": name};
# memory formats {"mf": name}; layouts {"layout": name}; devices strings.
import argparse
import json
import math
import random
import re
import sys
import time
import traceback
import warnings
import zlib

import torch

warnings.filterwarnings('ignore')
torch.set_num_threads(1)

SEED = 20261204

DTYPE_NAMES = {
    torch.float64: 'float64', torch.float32: 'float32', torch.float16: 'float16', torch.bfloat16: 'bfloat16',
    torch.int64: 'int64', torch.int32: 'int32', torch.int16: 'int16', torch.int8: 'int8', torch.uint8: 'uint8',
    torch.bool: 'bool', torch.complex64: 'complex64', torch.complex128: 'complex128',
}
MF_NAMES = {
    torch.contiguous_format: 'contiguousFormat', torch.preserve_format: 'preserveFormat',
    torch.channels_last: 'channelsLast', torch.channels_last_3d: 'channelsLast3d',
}
LAYOUT_NAMES = {torch.strided: 'strided'}


class Unsupported(Exception):
    """An argument or result Keel's JS API cannot express (complex, Generator, slice, ...)."""


# ---- schemas -------------------------------------------------------------------------

def split_top(s):
    """Splits a schema's argument list at top-level commas."""
    parts, depth, cur, quote = [], 0, '', None
    for ch in s:
        if quote:
            cur += ch
            if ch == quote:
                quote = None
            continue
        if ch in '"\'':
            quote = ch
        elif ch in '([':
            depth += 1
        elif ch in ')]':
            depth -= 1
        elif ch == ',' and depth == 0:
            parts.append(cur.strip())
            cur = ''
            continue
        cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


class Arg:
    def __init__(self, pyarg, text):
        self.name = pyarg.name
        self.kwarg_only = pyarg.kwarg_only
        self.has_default = pyarg.has_default_value()
        self.write = pyarg.alias_info is not None and pyarg.alias_info.is_write
        t = text.split('=')[0].strip()
        t = t[: t.rfind(' ')].strip() if ' ' in t else t
        self.text = t
        t = re.sub(r'\([^)]*\)', '', t)  # alias annotations: (a), (a!), (a -> *)
        self.optional = t.endswith('?')
        if self.optional:
            t = t[:-1]
        m = re.match(r'^(.*?)\[(\d*)\](\?)?$', t)
        self.is_list = False
        self.n = 0
        self.elem_optional = False
        if m:
            self.is_list = True
            self.n = int(m.group(2)) if m.group(2) else 0
            base = m.group(1)
            if m.group(3):
                self.optional = True
            if base.endswith('?'):
                self.elem_optional = True
                base = base[:-1]
            self.base = base
        else:
            self.base = t


class Schema:
    def __init__(self, overload):
        self.op = overload
        s = overload._schema
        self.name = s.name.split('::')[1]
        self.overload = s.overload_name
        text = str(s)
        inner = text[text.index('(') + 1: text.rindex(') ->')]
        texts = [p for p in split_top(inner) if p != '*']
        self.args = [Arg(a, t) for a, t in zip(s.arguments, texts)]
        self.returns = list(s.returns)
        self.mutable = any(a.write for a in self.args)
        self.ok = len(texts) == len(self.args)

    @property
    def label(self):
        return f'{self.name}.{self.overload or "default"}'


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def matches_base(v, base, elem_optional=False):
    if v is None:
        return elem_optional
    if base == 'Tensor':
        return isinstance(v, torch.Tensor)
    if base in ('int', 'SymInt'):
        return is_int(v)
    if base == 'float':
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if base == 'bool':
        return isinstance(v, bool)
    if base == 'Scalar':
        return isinstance(v, (int, float, bool))
    if base == 'str':
        return isinstance(v, str)
    if base == 'ScalarType':
        return isinstance(v, torch.dtype)
    if base == 'Layout':
        return isinstance(v, torch.layout)
    if base == 'MemoryFormat':
        return isinstance(v, torch.memory_format)
    if base == 'Device':
        return isinstance(v, (torch.device, str))
    return False  # Dimname, Generator (unless None), Storage, Stream, t, Any, ...


def matches(v, a):
    if v is None:
        return a.optional or (a.base == 'Generator' and a.optional)
    if a.is_list:
        if isinstance(v, (list, tuple, torch.Size)):
            return all(matches_base(x, a.base, a.elem_optional) for x in v)
        return a.n > 0 and a.base in ('int', 'SymInt', 'bool', 'float') and matches_base(v, a.base)
    return matches_base(v, a.base)


def bind(schema, args, kwargs):
    """Schema-ordered {name: value} for a call, or None when the schema does not accept it."""
    positional = [a for a in schema.args if not a.kwarg_only]
    if len(args) > len(positional):
        return None
    bound = {}
    for a, v in zip(positional, args):
        bound[a.name] = v
    names = {a.name for a in schema.args}
    for k, v in kwargs.items():
        if k not in names or k in bound:
            return None
        bound[k] = v
    for a in schema.args:
        if a.name in bound:
            if bound[a.name] is None and not a.optional and a.has_default:
                del bound[a.name]  # None for a defaulted argument: the default, as Python wrappers mean it
            elif not matches(bound[a.name], a):
                return None
        elif not a.has_default and not (a.optional and a.kwarg_only):
            return None
    return bound


def schemas_of(name):
    packet = getattr(torch.ops.aten, name, None)
    if packet is None:
        return []
    out = []
    try:
        ovs = packet.overloads()
    except Exception:
        return []
    ovs = sorted(ovs, key=lambda o: 0 if o == 'default' else 1)
    for ov in ovs:
        # only operators of the ATen dispatcher (Keel's set), not TorchScript's own overloads
        # such as aten::split(Tensor, int[]) or aten::sort.int(int[])
        if not torch._C._dispatch_has_kernel(f'aten::{name}' + ('' if ov == 'default' else f'.{ov}')):
            continue
        try:
            s = Schema(getattr(packet, ov))
        except Exception:
            continue
        if s.ok:
            out.append(s)
    return out


def call(schema, bound):
    """Calls the overload: non-keyword-only arguments positionally up to the first one left out, the rest by name."""
    args, kwargs, gap = [], {}, False
    for a in schema.args:
        if a.name not in bound:
            gap = True
            continue
        if a.kwarg_only or gap:
            kwargs[a.name] = bound[a.name]
        else:
            args.append(bound[a.name])
    return schema.op(*args, **kwargs)


def out_variant(schemas, f):
    """The out= overload whose non-out arguments are f's."""
    fargs = [(a.name, a.text) for a in f.args]
    for s in schemas:
        if s is f or not s.mutable:
            continue
        outs = [a for a in s.args if a.write]
        if not outs or not all(a.kwarg_only and a.base == 'Tensor' and not a.is_list for a in outs):
            continue
        rest = [(a.name, a.text) for a in s.args if not a.write]
        if rest == fargs and len(outs) == len(f.returns):
            return s
    return None


def inplace_variant(f):
    for s in schemas_of(f.name + '_'):
        if s.overload == f.overload and [(a.name, a.base) for a in s.args] == [(a.name, a.base) for a in f.args]:
            return s
    return None


# ---- values ------------------------------------------------------------------------------

def enc_float(x):
    if math.isnan(x):
        return 'nan'
    if math.isinf(x):
        return 'inf' if x > 0 else '-inf'
    return x


def enc_tensor(t, grad=False):
    if t.dtype not in DTYPE_NAMES:  # complex32, quantized
        raise Unsupported(f'{t.dtype} tensor')
    if t.layout != torch.strided:
        raise Unsupported(f'{t.layout} tensor')
    d = t.detach()
    if d._is_zerotensor():
        d = torch.zeros(d.shape, dtype=d.dtype)
    if d.is_conj():
        d = d.resolve_conj()
    if d.is_neg():
        d = d.resolve_neg()
    # complex: real and imaginary parts interleaved (view_as_real), Keel reads them the same way
    flat = (torch.view_as_real(d) if d.is_complex() else d).reshape(-1)
    if d.dtype in (torch.float16, torch.bfloat16):
        flat = flat.double()
    vals = flat.tolist()
    if d.is_floating_point() or d.is_complex():
        vals = [enc_float(x) for x in vals]
    r = {'T': DTYPE_NAMES[d.dtype], 's': list(d.shape), 'v': vals}
    if grad:
        r['g'] = 1
    return r


def enc(v, grad_ok=False):
    if isinstance(v, torch.Tensor):
        return enc_tensor(v, grad_ok and v.requires_grad)
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return {'f': enc_float(v)} if not math.isfinite(v) else v
    if isinstance(v, torch.Size):
        return list(v)
    if isinstance(v, (list, tuple)):
        return [enc(x, grad_ok) for x in v]
    if isinstance(v, torch.dtype):
        if v not in DTYPE_NAMES:
            raise Unsupported(str(v))
        return {'dtype': DTYPE_NAMES[v]}
    if isinstance(v, torch.memory_format):
        return {'mf': MF_NAMES[v]}
    if isinstance(v, torch.layout):
        if v not in LAYOUT_NAMES:
            raise Unsupported(str(v))
        return {'layout': LAYOUT_NAMES[v]}
    if isinstance(v, torch.device):
        return str(v)
    raise Unsupported(type(v).__name__)


def fresh(v, grad):
    """Detached contiguous copies of the tensors (what Keel sees), requiring grad where the sample did."""
    if isinstance(v, torch.Tensor):
        t = v.detach().contiguous().clone()
        if grad and v.requires_grad and t.is_floating_point():
            t.requires_grad_(True)
        return t
    if isinstance(v, dict):
        return {k: fresh(x, grad) for k, x in v.items()}
    if isinstance(v, (list, tuple)) and not isinstance(v, torch.Size):
        return type(v)(fresh(x, grad) for x in v)
    return v


def tensors_in(v):
    if isinstance(v, torch.Tensor):
        return [v]
    if isinstance(v, (list, tuple)):
        return [t for x in v for t in tensors_in(x)]
    return []


def as_list(r):
    return list(r) if isinstance(r, (list, tuple)) else [r]


def same(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype and torch.equal(
            torch.nan_to_num(a.detach()), torch.nan_to_num(b.detach()))
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def errmsg(e):
    return (type(e).__name__ + ': ' + str(e).strip().split('\n')[0])[:300]


# ---- one OpInfo ------------------------------------------------------------------------

def candidate_names(op):
    names = [op.aten_name, op.name.replace('.', '_'), op.name.split('.')[-1]]
    out = []
    for n in names:
        if n and n not in out and getattr(torch.ops.aten, n, None) is not None:
            out.append(n)
    return out


def dtypes_for(op):
    sup = op.supported_dtypes('cpu')
    floats = [d for d in (torch.float64, torch.float32) if d in sup]
    ints = [d for d in (torch.int64,) if d in sup]
    if not floats:
        ints = [d for d in (torch.int64, torch.int32, torch.bool) if d in sup]
    return floats + ints


# Keywords of Python wrappers that ATen does not have, dropped when they hold the value
# that makes the wrapper a plain call of the ATen op.
PY_ONLY_DEFAULTS = {'requires_grad': False, 'as_tuple': False, 'inplace': False, 'return_indices': False}
# at::Reduction
REDUCTIONS = {'none': 0, 'mean': 1, 'sum': 2}


def adapt(names, kwargs):
    """The small, listed translations from a Python wrapper's call to the ATen op's: (names, kwargs, notes)."""
    kw, notes = dict(kwargs), []
    for k, d in PY_ONLY_DEFAULTS.items():
        if k in kw and type(kw[k]) is type(d) and kw[k] == d:
            del kw[k]
            notes.append(f'{k}={d} dropped')
    if kw.get('return_indices') is True:
        del kw['return_indices']
        names = [n + '_with_indices' for n in names if getattr(torch.ops.aten, n + '_with_indices', None) is not None]
        notes.append('return_indices=True: the _with_indices op')
    if isinstance(kw.get('reduction'), str) and kw['reduction'] in REDUCTIONS:
        notes.append(f"reduction='{kw['reduction']}' as at::Reduction {REDUCTIONS[kw['reduction']]}")
        kw['reduction'] = REDUCTIONS[kw['reduction']]
    return names, kw, notes


def in_place_only(s):
    """An op that writes only into self (zero_, resize_): matched when the OpInfo is that op."""
    written = [a for a in s.args if a.write]
    return s.name.endswith('_') and len(written) == 1 and written[0] is s.args[0] and not written[0].kwarg_only


def resolve(names, sample):
    """(schema, bound, adaptations) of the first overload that accepts the sample and runs, or (None, reason, None)."""
    args = [sample.input] + list(sample.args)
    kwargs = dict(sample.kwargs)
    # Python varargs for a list argument, as the Python API takes them: f(t1, t2, t3) for
    # f(Tensor[] tensors) and x.f(2, 3) for f(Tensor self, int[] size)
    forms = [args]
    if all(isinstance(a, torch.Tensor) for a in args):
        forms.append([args])
    if len(args) >= 2 and all(is_int(a) for a in args[1:]):
        forms.append([args[0], args[1:]])
    tried = []
    attempts = [(names, kwargs, [])]
    anames, akw, notes = adapt(names, kwargs)
    if notes:
        attempts.append((anames, akw, notes))
    for ns, kw, notes in attempts:
        for n in ns:
            for s in schemas_of(n):
                if s.mutable and not in_place_only(s):
                    continue
                b = next((b for b in (bind(s, f, kw) for f in forms) if b is not None), None)
                if b is None:
                    continue
                try:
                    with torch.no_grad():
                        call(s, fresh(b, False))
                    return s, b, notes
                except Exception as e:
                    tried.append(f'{s.label}: {errmsg(e)}')
    if tried:
        return None, 'the matching overloads raise: ' + '; '.join(tried)[:300], None
    sig = ', '.join(describe(a) for a in args) + (', ' if kwargs else '') + ', '.join(f'{k}={describe(v)}' for k, v in kwargs.items())
    return None, f'no overload of aten::{"/".join(names)} accepts ({sig})'[:300], None


def describe(v):
    if isinstance(v, torch.Tensor):
        return 'Tensor'
    if isinstance(v, (list, tuple)):
        return '[' + ', '.join(describe(x) for x in v[:3]) + (', …' if len(v) > 3 else '') + ']'
    if isinstance(v, str):
        return repr(v)
    return type(v).__name__


def cotangent(outs, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(o.shape, generator=g, dtype=torch.complex128 if o.is_complex() else torch.float64).to(o.dtype) for o in outs]


def run_case(s, bound, dtype, seed, random_op, grad_disabled=None):
    names = [a.name for a in s.args]
    case = {
        'overload': s.label,
        'name': s.name,
        'ov': s.overload or 'default',
        'dtype': DTYPE_NAMES[dtype],
        'args': [[a.name, 1 if a.kwarg_only else 0, enc(bound[a.name], not s.mutable), i] for i, a in enumerate(s.args) if a.name in bound],
    }
    if random_op:
        case['nondet'] = 1
    # forward (+ grad)
    grad_mode = dtype.is_floating_point and not s.mutable
    args = fresh(bound, grad_mode)
    try:
        res = call(s, args)
        case['fwd'] = {'out': enc(res)}
    except Unsupported:
        raise
    except Exception as e:
        case['fwd'] = {'error': errmsg(e)}
        return case
    ins = [t for t in tensors_in(list(args[n] for n in names if n in args)) if t.requires_grad]
    outs = [o for o in tensors_in(res) if o.requires_grad and (o.is_floating_point() or o.is_complex())]
    if ins and outs and not random_op:
        cot = cotangent(outs, seed)
        try:
            gs = torch.autograd.grad(outs, ins, cot, allow_unused=True)
            case['grad'] = {'cot': [enc(c) for c in cot], 'grads': [None if g is None else enc(g) for g in gs]}
            # a second run on the same inputs: libtorch 1.13 has backward formulas that read
            # uninitialised memory (as_strided_scatter); such gradients are compared in shape only
            args2 = fresh(bound, True)
            res2 = call(s, args2)
            ins2 = [t for t in tensors_in(list(args2[n] for n in names if n in args2)) if t.requires_grad]
            outs2 = [o for o in tensors_in(res2) if o.requires_grad and (o.is_floating_point() or o.is_complex())]
            if not same(list(gs), list(torch.autograd.grad(outs2, ins2, cot, allow_unused=True))):
                case['grad']['nondet'] = 'the reference gradient differs between two runs on the same inputs'
            elif grad_disabled:
                case['grad']['nondet'] = grad_disabled
        except Exception as e:
            case['grad'] = {'cot': [enc(c) for c in cot], 'error': errmsg(e)}
    # out=
    packet = schemas_of(s.name)
    o = out_variant(packet, s)
    if o is not None:
        outs_ref = as_list(res)
        outnames = [a.name for a in o.args if a.write]
        dts = [DTYPE_NAMES.get(r.dtype, None) if isinstance(r, torch.Tensor) else None for r in outs_ref]
        entry = {'overload': o.label, 'ov': o.overload, 'outs': [[n, d] for n, d in zip(outnames, dts)]}
        if None in dts:
            entry = None
        else:
            b2 = fresh(bound, False)
            for n, r in zip(outnames, outs_ref):
                b2[n] = torch.empty(0, dtype=r.dtype)
            try:
                r2 = call(o, b2)
                entry['out'] = enc(r2)
                entry['written'] = [enc(b2[n]) for n in outnames]
            except Exception as e:
                entry['error'] = errmsg(e)
        if entry is not None:
            case['outv'] = entry
    # in-place
    ip = inplace_variant(s)
    if ip is not None:
        b3 = fresh(bound, False)
        entry = {'overload': ip.label, 'name': ip.name, 'ov': ip.overload or 'default'}
        try:
            r3 = call(ip, b3)
            entry['out'] = enc(r3)
            entry['self'] = enc(b3[ip.args[0].name])
        except Exception as e:
            entry['error'] = errmsg(e)
        case['inplace'] = entry
    return case


def grad_test_disabled(op, dtype):
    """Why PyTorch's own OpInfo disables its gradient test for this op on CPU (expectedFailure, skip), or None."""
    for d in getattr(op, 'decorators', None) or ():
        try:
            active = d.is_active('TestGradients', 'test_fn_grad', 'cpu', dtype)
        except Exception:
            continue
        names = [getattr(x, '__name__', type(x).__name__) for x in getattr(d, 'decorators', [])]
        # expectedFailure, or unittest.skip's wrapper (named 'decorator'); not tolerance overrides
        if active and any(n in ('expectedFailure', 'decorator') or n.startswith('skip') for n in names):
            return f"PyTorch's OpInfo disables its own CPU gradient test for this op ({', '.join(names)})"
    return None


def is_random(s, bound):
    try:
        torch.manual_seed(1)
        a = call(s, fresh(bound, False))
        torch.manual_seed(2)
        b = call(s, fresh(bound, False))
        return not same(a, b)
    except Exception:
        return False


def walk_op(op, max_samples):
    key = op.name + ('.' + op.variant_test_name if op.variant_test_name else '')
    rec = {'opinfo': key, 'cases': [], 'adapter': []}
    names = candidate_names(op)
    if not names:
        rec['adapter'].append(f'no ATen operator named {op.aten_name!r}: a Python composite')
        return rec
    uninit = any('empty' in n for n in names)
    for dtype in dtypes_for(op):
        dseed = zlib.crc32(f'{key}/{DTYPE_NAMES[dtype]}'.encode()) ^ SEED
        torch.manual_seed(dseed)
        try:
            samples = list(op.sample_inputs('cpu', dtype, requires_grad=op.supports_autograd and dtype.is_floating_point))
        except Exception as e:
            rec['adapter'].append(f'{DTYPE_NAMES[dtype]}: sample_inputs raised {errmsg(e)}')
            continue
        if max_samples:
            samples = samples[:max_samples]
        for i, sample in enumerate(samples):
            s, b, notes = resolve(names, sample)
            if s is None:
                rec['adapter'].append(f'{DTYPE_NAMES[dtype]}#{i}: {b}')
                continue
            try:
                rnd = uninit or is_random(s, b)
                case = run_case(s, b, dtype, dseed + i, rnd, grad_test_disabled(op, dtype))
            except Unsupported as e:
                rec['adapter'].append(f'{DTYPE_NAMES[dtype]}#{i}: argument or result Keel cannot express: {e}')
                continue
            case['id'] = f'{key}/{DTYPE_NAMES[dtype]}/{i}'
            if notes:
                case['adapted'] = '; '.join(notes)
            rec['cases'].append(case)
            if rnd:
                rec['nondet'] = 'uninitialized output (empty*)' if uninit else 'random output (differs between seeds)'
    if 'nondet' in rec:
        # one sample that differs between seeds makes every sample of the op suspect
        for case in rec['cases']:
            case['nondet'] = rec['nondet']
    return rec


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--out', required=True)
    p.add_argument('--subset', type=int, default=0, help='only N OpInfos, a fixed seeded sample')
    p.add_argument('--max-samples', type=int, default=0, help='at most K samples per OpInfo and dtype')
    p.add_argument('--ops', default='', help='comma-separated OpInfo names (name or name.variant)')
    a = p.parse_args()
    from torch.testing._internal.common_methods_invocations import op_db
    ops = list(op_db)
    keyed = {o.name + ('.' + o.variant_test_name if o.variant_test_name else ''): o for o in ops}
    if a.ops or a.subset:
        # --ops names exactly; --subset adds N more drawn with a fixed seed (the same N always)
        wanted = [k.strip() for k in a.ops.split(',') if k.strip()]
        missing = [k for k in wanted if k not in keyed]
        if missing:
            sys.exit(f'no OpInfo named {", ".join(missing)}')
        if a.subset:
            drawn = random.Random(SEED).sample(sorted(keyed), a.subset)
            wanted += [k for k in sorted(drawn) if k not in wanted]
        ops = [keyed[k] for k in wanted]
    t0 = time.time()
    recs = []
    for op in ops:
        try:
            recs.append(walk_op(op, a.max_samples))
        except Exception as e:
            key = op.name + ('.' + op.variant_test_name if op.variant_test_name else '')
            recs.append({'opinfo': key, 'cases': [], 'adapter': [f'harness error: {errmsg(e)}']})
            traceback.print_exc(file=sys.stderr)
    meta = {'torch': torch.__version__, 'seed': SEED, 'opinfos': len(recs), 'seconds': round(time.time() - t0, 1),
            'subset': a.subset, 'max_samples': a.max_samples}
    with open(a.out, 'w') as f:
        json.dump({'meta': meta, 'ops': recs}, f, allow_nan=False)


if __name__ == '__main__':
    main()
