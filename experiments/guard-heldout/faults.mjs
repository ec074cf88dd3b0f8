// The guard's held-out faults (issue 19 (a)). Written from how real training
// runs go NaN, WITHOUT reading src/guard/rules.ts, and run only before a
// release (`npm run guard:heldout`), never by `npm test`: the rules must not be
// tuned to these. Each fault says what a user would want to be told — the op
// (ATen name, as a regular expression), the phase, the module path where one
// is natural, and words the cause should contain — before the guard is run.
//
// A fault is { id, title, story, expected, steps?, build(keel) } where build
// returns { model, optimizer, loss(step) → Tensor, beforeStep?(step, optimizer) }.

/** A module class from a forward function and named children/parameters (plain JS: no decorators). */
function moduleClass(keel, name, fields, forward) {
  const C = class extends keel.nn.Module {
    constructor() {
      super();
      Object.assign(this, fields());
    }
    forward(...args) {
      return forward.call(this, keel, ...args);
    }
  };
  Object.defineProperty(C, 'name', { value: name });
  return new C();
}

const sgd = (keel, model, lr = 0.01) => new keel.optim.SGD(model.parameters(), { lr });

export const FAULTS = [
  {
    id: 'standardise-constant-feature',
    title: 'standardising by the batch std of a constant feature',
    story: 'A tabular model z-scores its inputs with the batch mean and std; one feature is constant in the batch (a sensor stuck, a one-hot column never set), its std is 0 and (x − μ)/σ is 0/0.',
    expected: { op: /aten::div/, phase: 'forward', module: '0', cause: /zero|divis|denominator|std/i },
    build(keel) {
      keel.manualSeed(11);
      const { nn } = keel;
      const standardise = moduleClass(keel, 'Standardise', () => ({}), function (_k, x) {
        return x.sub(x.mean(0, true)).div(x.std(0, { keepdim: true }));
      });
      const model = new nn.Sequential(standardise, new nn.Linear(4, 8), new nn.ReLU(), new nn.Linear(8, 1));
      const x = keel.randn([16, 4]);
      x.index([null, 2]).fill_(3);
      const y = keel.randn([16, 1]);
      return { model, optimizer: sgd(keel, model), loss: () => keel.ops.mseLoss(model.call(x), y) };
    },
  },
  {
    id: 'log-of-hand-softmax',
    title: 'log of a softmax computed by hand, with sharp logits',
    story: 'Cross-entropy written as −Σ y·log(softmax(z)) with a low temperature: a class far below the max gets probability exactly 0, log gives −inf and 0·(−inf) is NaN.',
    expected: { op: /aten::log\b|aten::log$/, phase: 'forward', module: '', cause: /log|underflow|zero|log_?softmax|logSoftmax/i },
    build(keel) {
      keel.manualSeed(12);
      const { nn, ops } = keel;
      const model = new nn.Sequential(new nn.Linear(10, 32), new nn.ReLU(), new nn.Linear(32, 5));
      const x = keel.randn([8, 10]).mul(3);
      const target = ops.oneHot(keel.tensor([0, 1, 2, 3, 4, 0, 1, 2], { dtype: 'int64' }), 5).to('float32');
      return {
        model, optimizer: sgd(keel, model),
        loss: () => {
          const p = model.call(x).div(0.01).softmax(1); // temperature 0.01
          return target.mul(p.log()).sum(1).mean().neg();
        },
      };
    },
  },
  {
    id: 'attention-exp-without-max',
    title: 'custom attention: exp of scores without subtracting the max',
    story: 'A hand-written attention normalises exp(qkᵀ/√d) by its row sum; with inputs of large scale a score passes 88.7, exp is inf in float32 and inf/inf is NaN.',
    expected: { op: /aten::exp/, phase: 'forward', module: 'attn', cause: /exp|overflow|max|softmax/i },
    build(keel) {
      keel.manualSeed(13);
      const { nn } = keel;
      const attn = moduleClass(keel, 'NaiveAttention', () => ({ q: new nn.Linear(16, 16), k: new nn.Linear(16, 16), v: new nn.Linear(16, 16) }), function (_k, x) {
        const s = this.q.call(x).matmul(this.k.call(x).transpose(1, 2)).div(4);
        const w = s.exp();
        return w.div(w.sum(-1, true)).matmul(this.v.call(x));
      });
      const model = moduleClass(keel, 'Encoder', () => ({ attn, head: new nn.Linear(16, 1) }), function (_k, x) {
        return this.head.call(this.attn.call(x)).mean(1);
      });
      const x = keel.randn([4, 6, 16]).mul(12);
      const y = keel.randn([4, 1]);
      return { model, optimizer: sgd(keel, model), loss: () => keel.ops.mseLoss(model.call(x), y) };
    },
  },
  {
    id: 'sqrt-of-cancelled-variance',
    title: 'sqrt of a variance E[x²] − E[x]² that cancels to slightly negative',
    story: 'A feature layer computes a per-sample std as sqrt(mean(x²) − mean(x)²) on raw values around 5000 with little spread: in float32 the difference cancels and comes out −2 for a row (0 for the others), and sqrt gives NaN.',
    expected: { op: /aten::sqrt/, phase: 'forward', module: '0', cause: /negative|sqrt|cancel/i },
    build(keel) {
      keel.manualSeed(14);
      const { nn } = keel;
      const stats = moduleClass(keel, 'RowStats', () => ({}), function (_k, x) {
        const m = x.mean(1, true);
        const sd = x.square().mean(1, true).sub(m.square()).sqrt();
        return x.sub(m).div(sd.add(1e-3));
      });
      const x = keel.randn([8, 64]).mul(1e-3).add(5000);
      const model = new nn.Sequential(stats, new nn.Linear(64, 1));
      const y = keel.randn([8, 1]);
      return { model, optimizer: sgd(keel, model), loss: () => keel.ops.mseLoss(model.call(x), y) };
    },
  },
  {
    id: 'acos-of-self-similarity',
    title: 'angular loss acos(cos θ) where student and teacher coincide',
    story: 'A BYOL/DINO-style loss takes acos of the cosine between the student and an EMA teacher initialised as its copy: cos is 1 (or 1 + ulp by rounding), acos is NaN beyond 1 and its gradient −1/√(1 − x²) is −inf at 1.',
    expected: { op: /aten::acos/, phase: /forward|backward/, module: '', cause: /acos|domain|\[-1, ?1\]|±1|clamp/i },
    build(keel) {
      keel.manualSeed(15);
      const { nn, ops } = keel;
      const model = new nn.Sequential(new nn.Linear(8, 16), new nn.ReLU(), new nn.Linear(16, 4));
      const x = keel.randn([6, 8]);
      return {
        model, optimizer: sgd(keel, model),
        loss: () => {
          const s = model.call(x);
          const t = s.detach(); // the teacher: a copy of the student at step 0
          const cos = s.mul(t).sum(1).div(s.norm(2, 1).mul(t.norm(2, 1)));
          return ops.acos(cos).mean();
        },
      };
    },
  },
  {
    id: 'atan2-at-origin',
    title: 'angle regression atan2(y, x) where the predicted vector is (0, 0)',
    story: 'A bias-free pose head predicts (cos, sin) and the loss compares atan2(sin, cos) with the target angle: a padded frame (all-zero input) gives the vector (0, 0), whose atan2 is 0 forward but whose gradient is 0/0.',
    expected: { op: /aten::atan2/, phase: 'backward', module: '', cause: /atan2|origin|0\/0|zero|\(0, ?0\)/i },
    build(keel) {
      keel.manualSeed(16);
      const { nn, ops } = keel;
      // a bias-free head: padded frames (all-zero inputs) give the vector (0, 0) exactly
      const model = new nn.Sequential(new nn.Linear(6, 12, { bias: false }), new nn.Tanh(), new nn.Linear(12, 2, { bias: false }));
      const x = keel.randn([10, 6]);
      const theta = keel.rand([10]).mul(3);
      x.index([8]).fill_(0);
      x.index([9]).fill_(0);
      return {
        model, optimizer: sgd(keel, model),
        loss: () => {
          const v = model.call(x);
          const ang = ops.atan2(v.select(1, 1), v.select(1, 0));
          return ang.sub(theta).square().mean();
        },
      };
    },
  },
  {
    id: 'normalise-zero-embedding',
    title: 'L2-normalising an embedding whose padding row is zero',
    story: 'Token embeddings are normalised by hand, e / ‖e‖; the padding row of the table is all zeros (padding_idx), so every padding token is 0/0.',
    expected: { op: /aten::div/, phase: 'forward', module: 'embed', cause: /zero|divis|norm|denominator/i },
    build(keel) {
      keel.manualSeed(17);
      const { nn, ops } = keel;
      const embed = moduleClass(keel, 'NormalisedEmbedding', () => {
        const w = keel.randn([20, 8]);
        w.index([0]).fill_(0); // padding_idx 0
        return { weight: nn.Parameter(w) };
      }, function (_k, tokens) {
        const e = ops.embedding(this.weight, tokens);
        return e.div(e.norm(2, -1, true));
      });
      const model = moduleClass(keel, 'BagModel', () => ({ embed, head: new nn.Linear(8, 3) }), function (_k, tokens) {
        return this.head.call(this.embed.call(tokens).mean(1));
      });
      const tokens = keel.tensor([[3, 5, 7, 0], [2, 9, 0, 0], [4, 4, 11, 13]], { dtype: 'int64' });
      const y = keel.tensor([0, 1, 2], { dtype: 'int64' });
      return { model, optimizer: sgd(keel, model), loss: () => ops.crossEntropyLoss(model.call(tokens), y) };
    },
  },
  {
    id: 'pairwise-distance-diagonal',
    title: 'pairwise distances by hand include each sample with itself',
    story: 'A triplet/contrastive loss builds the distance matrix as sqrt(Σ (aᵢ − aⱼ)²) over all pairs, the diagonal included: distance 0, whose sqrt has an infinite gradient (and 0·inf = NaN).',
    expected: { op: /aten::sqrt/, phase: 'backward', module: '', cause: /sqrt|zero|0\b|eps/i },
    build(keel) {
      keel.manualSeed(18);
      const { nn } = keel;
      const model = new nn.Sequential(new nn.Linear(8, 16), new nn.ReLU(), new nn.Linear(16, 4));
      const x = keel.randn([6, 8]);
      const same = keel.tensor([[1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 0, 0], [0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 1, 1]], { dtype: 'float32' });
      return {
        model, optimizer: sgd(keel, model),
        loss: () => {
          const a = model.call(x);
          const d = a.unsqueeze(1).sub(a.unsqueeze(0)).square().sum(-1).sqrt();
          // pull positives together, push negatives beyond margin 1
          const pos = d.mul(same).sum();
          const neg = d.neg().add(1).relu().mul(same.neg().add(1)).sum();
          return pos.add(neg).div(36);
        },
      };
    },
  },
  {
    id: 'warmup-to-huge-lr',
    title: 'a warmup schedule that forgets to divide by the warmup length',
    story: 'lr(t) = base · t instead of base · t / warmup: by step 20 the learning rate is 20× base and growing; SGD diverges and the weights overflow.',
    steps: 80,
    expected: { op: /optimizer\.step/, phase: 'update', cause: /learning rate|\blr\b|diverg/i },
    build(keel) {
      keel.manualSeed(19);
      const { nn } = keel;
      const model = new nn.Sequential(new nn.Linear(8, 32), new nn.ReLU(), new nn.Linear(32, 1));
      const optimizer = sgd(keel, model, 0.05);
      const x = keel.randn([32, 8]);
      const y = x.sum(1, true);
      return {
        model, optimizer,
        beforeStep(step, opt) {
          for (const g of opt.paramGroups) g.lr = 0.05 * step; // bug: should be 0.05 * min(1, step / 1000)
        },
        loss: () => keel.ops.mseLoss(model.call(x), y),
      };
    },
  },
  {
    id: 'fp16-similarity-matmul-overflow',
    title: 'fp16 (emulated): a contrastive similarity matrix of unnormalised embeddings overflows',
    story: 'Under a float16 policy a SimCLR-style loss takes h·hᵀ of embeddings that were never normalised; with activations up to ~55 the diagonal passes 65504 and is inf; the softmax over it is NaN.',
    expected: { op: /aten::(mm|matmul|bmm)/, phase: 'forward', module: '', cause: /fp16|float16|range|overflow|65504/i },
    build(keel) {
      keel.manualSeed(20);
      const { nn, ops } = keel;
      const model = new nn.Sequential(new nn.Linear(64, 256), new nn.ReLU(), new nn.Linear(256, 256));
      const x = keel.randn([8, 64]).mul(60);
      const labels = keel.tensor([0, 1, 2, 3, 4, 5, 6, 7], { dtype: 'int64' });
      return {
        model, optimizer: sgd(keel, model),
        loss: () => keel.withPrecision('fp16', () => {
          const h = model.call(x);
          const sim = ops.mm(h, h.t());
          return ops.crossEntropyLoss(sim.div(0.5), labels);
        }),
      };
    },
  },
  {
    id: 'fp16-sum-reduction-overflow',
    title: 'fp16 (emulated): a sum-reduced loss over a large batch overflows',
    story: 'Gradient accumulation written as loss = Σ over the batch (reduction "sum") under float16: each squared error is ~500, fine, but the sum over 512 values passes 65504.',
    expected: { op: /aten::sum/, phase: 'forward', module: '', cause: /fp16|float16|range|overflow|65504/i },
    build(keel) {
      keel.manualSeed(21);
      const { nn } = keel;
      const model = new nn.Sequential(new nn.Linear(4, 16), new nn.ReLU(), new nn.Linear(16, 1));
      const x = keel.randn([512, 4]);
      const y = keel.randn([512, 1]).mul(5).add(20);
      return {
        model, optimizer: sgd(keel, model, 1e-5),
        loss: () => keel.withPrecision('fp16', () => model.call(x).sub(y).square().sum()),
      };
    },
  },
  {
    id: 'bf16-autocast-hand-bce',
    title: 'bf16 autocast: binary cross-entropy by hand on a sigmoid that rounds to 1',
    story: 'Under keel.autocast (bfloat16, CPU) the head\'s logits come out in bfloat16; sigmoid(7) = 0.99909 rounds to 1.0 in bfloat16 (8 bits of mantissa), log(1 − p) is log(0) = −inf and (1 − y)·(−inf) with y = 1 is NaN.',
    expected: { op: /aten::log\b|aten::log$/, phase: 'forward', module: '', cause: /log|zero|saturat|bfloat16|bf16|logits|with_?logits/i },
    build(keel) {
      keel.manualSeed(22);
      const { nn } = keel;
      const model = new nn.Sequential(new nn.Linear(16, 32), new nn.ReLU(), new nn.Linear(32, 1));
      keel.noGrad(() => model.get(2).bias.fill_(8));
      const x = keel.randn([16, 16]);
      const y = keel.ones([16, 1]);
      return {
        model, optimizer: sgd(keel, model),
        loss: () => keel.autocast({ dtype: 'bfloat16' }, () => {
          const p = model.call(x).sigmoid();
          const one = keel.onesLike(p);
          return y.mul(p.log()).add(one.sub(y).mul(one.sub(p).log())).mean().neg();
        }),
      };
    },
  },
  {
    id: 'nan-label',
    title: 'a NaN in the regression targets (a missing value read as NaN)',
    story: 'A CSV with an empty cell is parsed to NaN in one target; the MSE over the batch is NaN, and every gradient after it.',
    expected: { op: /aten::mse_loss/, phase: 'forward', module: '', cause: /target|data|NaN|input|already holds/i },
    build(keel) {
      keel.manualSeed(23);
      const { nn } = keel;
      const model = new nn.Sequential(new nn.Linear(5, 16), new nn.ReLU(), new nn.Linear(16, 1));
      const x = keel.randn([12, 5]);
      const y = keel.randn([12, 1]);
      y.index([7, 0]).fill_(Number.NaN);
      return { model, optimizer: sgd(keel, model), loss: () => keel.ops.mseLoss(model.call(x), y) };
    },
  },
  {
    id: 'bitflip-checkpoint-weight',
    title: 'a checkpoint weight corrupted by a bit flip (finite, 1e38-sized)',
    story: 'One bit of the exponent of one weight flips on disk or in memory: the weight is finite but ~1e38, so the layer\'s matmul overflows to inf on the first batch.',
    expected: { op: /aten::(linear|addmm|mm|matmul)/, phase: 'forward', module: '2', cause: /weight|parameter|overflow|huge|e\+?3[0-9]|corrupt|large/i },
    build(keel) {
      keel.manualSeed(24);
      const { nn } = keel;
      const model = new nn.Sequential(new nn.Linear(6, 16), new nn.ReLU(), new nn.Linear(16, 3));
      const w = model.get(2).weight;
      const vals = new Float32Array(w.toArray().flat());
      const bits = new Uint32Array(vals.buffer);
      let k = 0;
      for (let i = 1; i < vals.length; i++) if (Math.abs(vals[i]) > Math.abs(vals[k])) k = i;
      bits[k] ^= 1 << 30; // the exponent's top bit of the largest weight: ~1e38
      keel.noGrad(() => w.copy_(keel.tensor(Array.from(vals)).reshape([3, 16])));
      const x = keel.randn([8, 6]).mul(6);
      const y = keel.tensor([0, 1, 2, 0, 1, 2, 0, 1], { dtype: 'int64' });
      return { model, optimizer: sgd(keel, model), loss: () => keel.ops.crossEntropyLoss(model.call(x), y) };
    },
  },
  {
    id: 'mean-pool-all-padding',
    title: 'masked mean pooling over a sequence that is all padding',
    story: 'A text encoder pools Σ mask·e / Σ mask; an empty document (all padding tokens) has Σ mask = 0 and its pooled vector is 0/0.',
    expected: { op: /aten::div/, phase: 'forward', module: 'pool', cause: /zero|divis|denominator|mask|empty/i },
    build(keel) {
      keel.manualSeed(25);
      const { nn, ops } = keel;
      const pool = moduleClass(keel, 'MaskedMeanPool', () => ({}), function (_k, e, mask) {
        const m = mask.unsqueeze(-1);
        return e.mul(m).sum(1).div(m.sum(1));
      });
      const model = moduleClass(keel, 'TextEncoder', () => ({ table: nn.Parameter(keel.randn([30, 8])), pool, head: new nn.Linear(8, 2) }), function (_k, tokens) {
        const mask = tokens.ne(0).to('float32');
        return this.head.call(this.pool.call(ops.embedding(this.table, tokens), mask));
      });
      const tokens = keel.tensor([[5, 6, 7, 0], [0, 0, 0, 0], [9, 3, 0, 0]], { dtype: 'int64' });
      const y = keel.tensor([0, 1, 1], { dtype: 'int64' });
      return { model, optimizer: sgd(keel, model), loss: () => ops.crossEntropyLoss(model.call(tokens), y) };
    },
  },
  {
    id: 'focal-fractional-gamma',
    title: 'focal loss (1 − p)^γ with γ = 0.5 on a fully confident row',
    story: 'A focal loss with a fractional γ: a confident row has p = 1 exactly in float32, (1 − p)^0.5 is 0 forward but its derivative 0.5·0^(−0.5) is inf.',
    expected: { op: /aten::pow/, phase: 'backward', module: '', cause: /pow|fractional|exponent|zero|0\^/i },
    build(keel) {
      keel.manualSeed(26);
      const { nn, ops } = keel;
      const model = new nn.Sequential(new nn.Linear(6, 16), new nn.ReLU(), new nn.Linear(16, 4));
      keel.noGrad(() => model.get(2).bias.copy_(keel.tensor([40, 0, 0, 0])));
      const x = keel.randn([8, 6]);
      const y = keel.tensor([0, 0, 0, 0, 1, 2, 3, 0], { dtype: 'int64' });
      return {
        model, optimizer: sgd(keel, model),
        loss: () => {
          const logp = model.call(x).logSoftmax(1);
          const lpt = logp.gather(1, y.unsqueeze(1)).squeeze(1);
          const pt = lpt.exp();
          return ops.pow(pt.neg().add(1), 0.5).mul(lpt).neg().mean();
        },
      };
    },
  },
  {
    id: 'gaussian-nll-variance-underflow',
    title: 'Gaussian NLL with a variance head exp(s) that underflows to 0',
    story: 'A heteroscedastic regression predicts σ² = exp(s); a head whose s drifted to −110 gives σ² = 0 in float32 (below the smallest subnormal), and (y − μ)²/σ² is inf.',
    expected: { op: /aten::div/, phase: 'forward', module: '', cause: /zero|underflow|divis|denominator|exp/i },
    build(keel) {
      keel.manualSeed(27);
      const { nn } = keel;
      const model = new nn.Sequential(new nn.Linear(4, 16), new nn.ReLU(), new nn.Linear(16, 2));
      keel.noGrad(() => model.get(2).bias.copy_(keel.tensor([0, -110])));
      const x = keel.randn([10, 4]);
      const y = keel.randn([10]);
      return {
        model, optimizer: sgd(keel, model),
        loss: () => {
          const o = model.call(x);
          const mu = o.select(1, 0);
          const s = o.select(1, 1);
          const v = s.exp();
          return y.sub(mu).square().div(v).add(s).mul(0.5).mean();
        },
      };
    },
  },
  {
    id: 'layernorm-eps0-constant-row',
    title: 'LayerNorm with eps = 0 over an all-zero padding position',
    story: 'eps was set to 0 (a port from a framework whose default differs, or "for exactness"); a padding position whose features are all 0 has variance 0, and the normalisation is 0·(1/√0) = NaN.',
    expected: { op: /aten::(native_)?layer_norm/, phase: 'forward', module: 'norm', cause: /eps|variance|zero|constant/i },
    build(keel) {
      keel.manualSeed(28);
      const { nn } = keel;
      const model = moduleClass(keel, 'Block', () => ({ norm: new nn.LayerNorm(8, { eps: 0 }), ff: new nn.Linear(8, 1) }), function (_k, x) {
        return this.ff.call(this.norm.call(x)).squeeze(-1);
      });
      const x = keel.randn([3, 5, 8]);
      x.index([1, 4]).fill_(0); // a padding position
      const y = keel.randn([3, 5]);
      return { model, optimizer: sgd(keel, model), loss: () => keel.ops.mseLoss(model.call(x), y) };
    },
  },
];
