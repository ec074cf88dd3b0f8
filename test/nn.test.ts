// keel.nn against PyTorch (Debian's python3-torch, the same libtorch): every
// layer's initial parameters after the same seed, its forward output, input
// and parameter gradients, and BatchNorm's running statistics; keel.nn.init;
// the zoo models' module paths, state dict keys and shapes, seeded
// initialisation, and outputs after loading PyTorch's weights from a
// safetensors file written by Python; strict loading errors; safetensors
// round trips both ways. Two Python subprocesses in all.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as keel from 'keel';
import { assertClose, type Nested } from './helpers/assert.js';
import { runTorch, torchAvailable } from './helpers/torch.js';

const nn = keel.nn;
type Tensor = keel.Tensor;
type Mode = 'train' | 'eval';

const noTorch = !torchAvailable();
const DIR = mkdtempSync(join(tmpdir(), 'keel-nn-'));
after(() => rmSync(DIR, { recursive: true, force: true }));

// ---- layers: one case per configuration --------------------------------------

interface LayerCase {
  name: string;
  keel: () => keel.nn.Module;
  /** The same layer in PyTorch (evaluated with torch.nn as nn). */
  py: string;
  shape: number[];
  dtype?: 'float32' | 'float64';
  /** One forward (+ backward) per entry, in this mode. Default ['train']. */
  modes?: Mode[];
  /** Multiplies the random input (to reach e.g. Softplus's threshold). */
  scale?: number;
}

const LAYERS: LayerCase[] = [
  { name: 'Linear', keel: () => new nn.Linear(5, 3), py: 'nn.Linear(5, 3)', shape: [4, 5] },
  { name: 'Linear no bias, 3-d input', keel: () => new nn.Linear(5, 3, { bias: false }), py: 'nn.Linear(5, 3, bias=False)', shape: [2, 3, 5] },
  { name: 'Linear float64', keel: () => new nn.Linear(7, 4, { dtype: 'float64' }), py: 'nn.Linear(7, 4, dtype=torch.float64)', shape: [3, 7], dtype: 'float64' },
  { name: 'Conv2d stride 2 padding 1', keel: () => new nn.Conv2d(3, 4, 3, { stride: 2, padding: 1 }), py: 'nn.Conv2d(3, 4, 3, stride=2, padding=1)', shape: [2, 3, 9, 9] },
  {
    name: "Conv2d 'same', dilation, groups, no bias",
    keel: () => new nn.Conv2d(4, 6, [3, 2], { padding: 'same', dilation: 2, groups: 2, bias: false }),
    py: "nn.Conv2d(4, 6, (3, 2), padding='same', dilation=2, groups=2, bias=False)", shape: [2, 4, 8, 7],
  },
  { name: "Conv2d 'valid' rectangular stride", keel: () => new nn.Conv2d(2, 3, 2, { padding: 'valid', stride: [1, 2] }), py: "nn.Conv2d(2, 3, 2, padding='valid', stride=(1, 2))", shape: [1, 2, 6, 7] },
  { name: 'Conv2d float64', keel: () => new nn.Conv2d(3, 5, 3, { dtype: 'float64' }), py: 'nn.Conv2d(3, 5, 3, dtype=torch.float64)', shape: [2, 3, 6, 6], dtype: 'float64' },
  {
    name: 'ConvTranspose2d stride 2, output padding, groups',
    keel: () => new nn.ConvTranspose2d(4, 6, 3, { stride: 2, padding: 1, outputPadding: 1, groups: 2 }),
    py: 'nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2)', shape: [2, 4, 5, 5],
  },
  { name: 'ConvTranspose2d 2x2 stride 2, no bias', keel: () => new nn.ConvTranspose2d(3, 2, 2, { stride: 2, bias: false }), py: 'nn.ConvTranspose2d(3, 2, 2, stride=2, bias=False)', shape: [1, 3, 4, 3] },
  { name: 'BatchNorm1d [N, C]', keel: () => new nn.BatchNorm1d(4), py: 'nn.BatchNorm1d(4)', shape: [6, 4], modes: ['train', 'train', 'eval'] },
  {
    name: 'BatchNorm1d [N, C, L], cumulative average', keel: () => new nn.BatchNorm1d(3, { momentum: null }),
    py: 'nn.BatchNorm1d(3, momentum=None)', shape: [4, 3, 5], modes: ['train', 'train', 'train', 'eval'],
  },
  { name: 'BatchNorm2d', keel: () => new nn.BatchNorm2d(3), py: 'nn.BatchNorm2d(3)', shape: [4, 3, 5, 5], modes: ['train', 'train', 'eval', 'train'] },
  {
    name: 'BatchNorm2d no affine, no running stats', keel: () => new nn.BatchNorm2d(3, { affine: false, trackRunningStats: false }),
    py: 'nn.BatchNorm2d(3, affine=False, track_running_stats=False)', shape: [2, 3, 4, 4], modes: ['train', 'eval'],
  },
  {
    name: 'BatchNorm2d float64 momentum 0.3 eps 1e-3', keel: () => new nn.BatchNorm2d(2, { momentum: 0.3, eps: 1e-3, dtype: 'float64' }),
    py: 'nn.BatchNorm2d(2, momentum=0.3, eps=1e-3, dtype=torch.float64)', shape: [3, 2, 3, 3], dtype: 'float64', modes: ['train', 'train', 'eval'],
  },
  { name: 'GroupNorm', keel: () => new nn.GroupNorm(2, 6), py: 'nn.GroupNorm(2, 6)', shape: [3, 6, 4, 4] },
  { name: 'GroupNorm no affine eps', keel: () => new nn.GroupNorm(3, 6, { affine: false, eps: 1e-3 }), py: 'nn.GroupNorm(3, 6, affine=False, eps=1e-3)', shape: [2, 6, 5] },
  { name: 'LayerNorm [4, 5]', keel: () => new nn.LayerNorm([4, 5]), py: 'nn.LayerNorm([4, 5])', shape: [3, 2, 4, 5] },
  { name: 'LayerNorm no affine', keel: () => new nn.LayerNorm(5, { elementwiseAffine: false }), py: 'nn.LayerNorm(5, elementwise_affine=False)', shape: [4, 5] },
  { name: 'LayerNorm float64', keel: () => new nn.LayerNorm(6, { dtype: 'float64' }), py: 'nn.LayerNorm(6, dtype=torch.float64)', shape: [3, 6], dtype: 'float64' },
  { name: 'Dropout', keel: () => new nn.Dropout(0.3), py: 'nn.Dropout(0.3)', shape: [8, 50], modes: ['train', 'train', 'eval'] },
  { name: 'MaxPool2d 3 stride 2 padding 1', keel: () => new nn.MaxPool2d(3, { stride: 2, padding: 1 }), py: 'nn.MaxPool2d(3, stride=2, padding=1)', shape: [2, 3, 9, 9] },
  { name: 'MaxPool2d ceil mode dilation', keel: () => new nn.MaxPool2d(2, { ceilMode: true, dilation: [1, 2] }), py: 'nn.MaxPool2d(2, ceil_mode=True, dilation=(1, 2))', shape: [1, 2, 7, 9] },
  { name: 'AvgPool2d', keel: () => new nn.AvgPool2d(2), py: 'nn.AvgPool2d(2)', shape: [2, 3, 6, 7] },
  {
    name: 'AvgPool2d padding, no pad counting, ceil',
    keel: () => new nn.AvgPool2d(3, { stride: 2, padding: 1, countIncludePad: false, ceilMode: true }),
    py: 'nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False, ceil_mode=True)', shape: [2, 2, 8, 8],
  },
  { name: 'AvgPool2d divisor override', keel: () => new nn.AvgPool2d([2, 3], { divisorOverride: 4 }), py: 'nn.AvgPool2d((2, 3), divisor_override=4)', shape: [1, 2, 6, 6] },
  { name: 'AdaptiveAvgPool2d 1', keel: () => new nn.AdaptiveAvgPool2d(1), py: 'nn.AdaptiveAvgPool2d(1)', shape: [2, 3, 5, 7] },
  { name: 'AdaptiveAvgPool2d (3, None)', keel: () => new nn.AdaptiveAvgPool2d([3, null]), py: 'nn.AdaptiveAvgPool2d((3, None))', shape: [2, 3, 7, 8] },
  { name: 'Upsample nearest ×2', keel: () => new nn.Upsample({ scaleFactor: 2 }), py: 'nn.Upsample(scale_factor=2)', shape: [1, 2, 3, 4] },
  { name: 'Upsample nearest size', keel: () => new nn.Upsample({ size: [7, 9] }), py: "nn.Upsample(size=(7, 9), mode='nearest')", shape: [1, 2, 3, 4] },
  { name: 'Upsample nearest ×1.7', keel: () => new nn.Upsample({ scaleFactor: 1.7 }), py: 'nn.Upsample(scale_factor=1.7)', shape: [1, 2, 5, 4] },
  {
    name: 'Upsample bilinear alignCorners', keel: () => new nn.Upsample({ scaleFactor: 2, mode: 'bilinear', alignCorners: true }),
    py: "nn.Upsample(scale_factor=2, mode='bilinear', align_corners=True)", shape: [2, 2, 3, 4],
  },
  {
    name: 'Upsample bilinear ×1.5 no alignCorners', keel: () => new nn.Upsample({ scaleFactor: 1.5, mode: 'bilinear', alignCorners: false }),
    py: "nn.Upsample(scale_factor=1.5, mode='bilinear', align_corners=False)", shape: [1, 2, 4, 5],
  },
  {
    name: 'Upsample bilinear size, recomputed scale', keel: () => new nn.Upsample({ scaleFactor: [1.5, 2.5], mode: 'bilinear', recomputeScaleFactor: true }),
    py: "nn.Upsample(scale_factor=(1.5, 2.5), mode='bilinear', align_corners=False, recompute_scale_factor=True)", shape: [1, 1, 3, 3],
  },
  { name: 'Flatten', keel: () => new nn.Flatten(), py: 'nn.Flatten()', shape: [2, 3, 4, 2] },
  { name: 'Flatten 0..2', keel: () => new nn.Flatten({ startDim: 0, endDim: 2 }), py: 'nn.Flatten(0, 2)', shape: [2, 3, 4, 2] },
  { name: 'ReLU', keel: () => new nn.ReLU(), py: 'nn.ReLU()', shape: [3, 7] },
  { name: 'GELU', keel: () => new nn.GELU(), py: 'nn.GELU()', shape: [3, 7], scale: 3 },
  { name: 'GELU tanh', keel: () => new nn.GELU({ approximate: 'tanh' }), py: "nn.GELU(approximate='tanh')", shape: [3, 7], scale: 3 },
  { name: 'Sigmoid', keel: () => new nn.Sigmoid(), py: 'nn.Sigmoid()', shape: [3, 7], scale: 5 },
  { name: 'LogSigmoid', keel: () => new nn.LogSigmoid(), py: 'nn.LogSigmoid()', shape: [3, 7], scale: 20 },
  { name: 'Tanh', keel: () => new nn.Tanh(), py: 'nn.Tanh()', shape: [3, 7], scale: 3 },
  { name: 'Softplus', keel: () => new nn.Softplus(), py: 'nn.Softplus()', shape: [3, 7], scale: 10 },
  { name: 'Softplus beta 2 threshold 5', keel: () => new nn.Softplus({ beta: 2, threshold: 5 }), py: 'nn.Softplus(beta=2, threshold=5)', shape: [3, 7], scale: 4 },
  {
    name: 'Sequential', keel: () => new nn.Sequential(new nn.Linear(4, 5), new nn.Tanh(), new nn.Linear(5, 2)),
    py: 'nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 2))', shape: [3, 4],
  },
  {
    name: 'Sequential with BatchNorm and Dropout',
    keel: () => new nn.Sequential(new nn.Conv2d(2, 4, 3, { padding: 1 }), new nn.BatchNorm2d(4), new nn.ReLU({ inplace: true }), new nn.Dropout(0.25), new nn.Flatten(), new nn.Linear(64, 3)),
    py: 'nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True), nn.Dropout(0.25), nn.Flatten(), nn.Linear(64, 3))',
    shape: [3, 2, 4, 4], modes: ['train', 'eval'],
  },
];

interface Step {
  x: Nested;
  y: Nested;
  r: Nested;
  gx: Nested;
  grads: Record<string, Nested>;
  state: Record<string, Nested>;
}
interface LayerRef {
  keys: string[];
  shapes: number[][];
  state0: Record<string, Nested>;
  steps: Step[];
}
interface InitRef {
  gains: Record<string, number>;
  tensors: Record<string, Nested>;
}

const LAYER_PY = `
import torch.nn as nn
res = {}
for i, c in enumerate(inp['layers']):
    dt = getattr(torch, c['dtype'])
    seed = 100 + i
    torch.manual_seed(seed)
    m = eval(c['py'])
    sd = m.state_dict()
    r = {'keys': list(sd.keys()), 'shapes': [list(v.shape) for v in sd.values()], 'state0': {k: L(v) for k, v in sd.items()}, 'steps': []}
    g = torch.Generator().manual_seed(5000 + i)
    for j, mode in enumerate(c['modes']):
        m.train(mode == 'train')
        x = (torch.randn(c['shape'], generator=g, dtype=dt) * c['scale']).requires_grad_(True)
        torch.manual_seed(9000 + 10 * i + j)   # dropout masks
        y = m(x)
        cot = torch.randn(y.shape, generator=g, dtype=dt)
        (y * cot).sum().backward()
        r['steps'].append({'x': L(x), 'y': L(y), 'r': L(cot), 'gx': L(x.grad),
                           'grads': {k: L(p.grad) for k, p in m.named_parameters()},
                           'state': {k: L(v) for k, v in m.state_dict().items()}})
        m.zero_grad()
    res[c['name']] = r

# keel.nn.init, in one seeded stream
torch.manual_seed(42)
I = nn.init
t = {}
def mk(name, *shape):
    w = torch.empty(*shape); t[name] = w; return w
I.kaiming_uniform_(mk('ku', 6, 4, 3, 3))
I.kaiming_uniform_(mk('ku_a', 5, 7), a=math.sqrt(5))
I.kaiming_uniform_(mk('ku_out_relu', 6, 4, 3, 3), mode='fan_out', nonlinearity='relu')
I.kaiming_normal_(mk('kn', 8, 3, 2, 2))
I.kaiming_normal_(mk('kn_out', 8, 3, 2, 2), mode='fan_out', nonlinearity='relu')
I.kaiming_normal_(mk('kn_leaky', 5, 6), a=0.2, nonlinearity='leaky_relu')
I.xavier_uniform_(mk('xu', 5, 9))
I.xavier_uniform_(mk('xu_gain', 4, 3, 3, 3), gain=I.calculate_gain('tanh'))
I.xavier_normal_(mk('xn', 5, 9))
I.xavier_normal_(mk('xn_gain', 6, 2), gain=2.5)
I.normal_(mk('normal', 4, 5), 0.5, 2.0)
I.uniform_(mk('uniform', 4, 5), -3.0, 0.5)
I.zeros_(mk('zeros', 3))
I.ones_(mk('ones', 2, 2))
I.constant_(mk('constant', 3, 2), 0.25)
I.trunc_normal_(mk('trunc', 50, 40), mean=0.5, std=1.5, a=-1.0, b=2.0)
gains = {'linear': I.calculate_gain('linear'), 'conv2d': I.calculate_gain('conv2d'), 'sigmoid': I.calculate_gain('sigmoid'),
         'tanh': I.calculate_gain('tanh'), 'relu': I.calculate_gain('relu'), 'leaky_relu': I.calculate_gain('leaky_relu'),
         'leaky_relu_0.2': I.calculate_gain('leaky_relu', 0.2), 'selu': I.calculate_gain('selu')}
out = {'layers': res, 'init': {'gains': gains, 'tensors': {k: L(v) for k, v in t.items()}}}
`;

let layerRefs: Record<string, LayerRef>;
let initRef: InitRef;

// ---- zoo ------------------------------------------------------------------------

interface ZooCase {
  name: string;
  keel: () => keel.nn.Module;
  /** Builds the same architecture in PyTorch (classes defined in ZOO_PY). */
  py: string;
  shape: number[];
  /** Also compare a training-mode forward (models without dropout). */
  train: boolean;
}

const ZOO: ZooCase[] = [
  { name: 'mlp', keel: () => new nn.zoo.MLP({ inFeatures: 784, numClasses: 10, hidden: [64, 32] }), py: 'MLP(784, [64, 32], 10)', shape: [3, 1, 28, 28], train: true },
  { name: 'mlp_bn', keel: () => new nn.zoo.MLP({ inFeatures: 20, numClasses: 4, hidden: [16], batchNorm: true, activation: 'gelu' }), py: 'MLP(20, [16], 4, bn=True, act=nn.GELU)', shape: [5, 20], train: true },
  { name: 'lenet5', keel: () => new nn.zoo.LeNet5(), py: 'LeNet5(1, 10)', shape: [3, 1, 28, 28], train: true },
  { name: 'vgg11', keel: () => new nn.zoo.VGG11(), py: 'VGG11(3, 10, False)', shape: [2, 3, 32, 32], train: false },
  { name: 'vgg11_bn', keel: () => new nn.zoo.VGG11({ batchNorm: true, inChannels: 1, numClasses: 5 }), py: 'VGG11(1, 5, True)', shape: [2, 1, 32, 32], train: false },
  { name: 'resnet18', keel: () => new nn.zoo.ResNet18({ numClasses: 10 }), py: 'ResNet18(3, 10)', shape: [2, 3, 32, 32], train: true },
  { name: 'unet', keel: () => new nn.zoo.UNet({ inChannels: 3, numClasses: 2, depth: 3, width: 8 }), py: "UNet(3, 2, 3, 8, 'transpose', 'batch')", shape: [2, 3, 32, 32], train: true },
  {
    name: 'unet_bilinear_group_odd',
    keel: () => new nn.zoo.UNet({ inChannels: 1, numClasses: 3, depth: 2, width: 4, upsampling: 'bilinear', norm: 'group', groups: 2 }),
    py: "UNet(1, 3, 2, 4, 'bilinear', 'group', 2)", shape: [2, 1, 13, 10], train: true,
  },
];

interface ZooRef {
  keys: string[];
  shapes: number[][];
  modules: string[];
  x: Nested;
  yEval: Nested;
  yTrain: Nested | null;
  stateAfterTrain: Record<string, Nested> | null;
}

// The reference architectures, written as the PyTorch code they mirror.
const ZOO_PY = `
import struct
import torch.nn as nn
import torch.nn.functional as F

ST = {torch.float32: 'F32', torch.float64: 'F64', torch.int64: 'I64'}
def save_st(sd, path):
    header, blobs, off = {}, [], 0
    for k, v in sd.items():
        b = v.detach().contiguous().numpy().tobytes()
        header[k] = {'dtype': ST[v.dtype], 'shape': list(v.shape), 'data_offsets': [off, off + len(b)]}
        off += len(b); blobs.append(b)
    h = json.dumps(header).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h))); f.write(h)
        for b in blobs: f.write(b)
def load_st(path):
    data = open(path, 'rb').read()
    n = struct.unpack('<Q', data[:8])[0]
    h = json.loads(data[8:8 + n]); base = 8 + n
    inv = {v: k for k, v in ST.items()}
    return {k: torch.frombuffer(bytearray(data[base + i['data_offsets'][0]: base + i['data_offsets'][1]]), dtype=inv[i['dtype']]).reshape(i['shape'])
            for k, i in h.items() if k != '__metadata__'}

class MLP(nn.Module):
    def __init__(self, n_in, hidden, n_out, bn=False, act=nn.ReLU):
        super().__init__()
        self.flatten = nn.Flatten()
        mods, w = [], n_in
        for h in hidden:
            mods.append(nn.Linear(w, h))
            if bn: mods.append(nn.BatchNorm1d(h))
            mods.append(act()); w = h
        mods.append(nn.Linear(w, n_out))
        self.layers = nn.Sequential(*mods)
    def forward(self, x): return self.layers(self.flatten(x))

class LeNet5(nn.Module):
    def __init__(self, c, k):
        super().__init__()
        self.conv1 = nn.Conv2d(c, 6, 5, padding=2); self.act1 = nn.ReLU(); self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 16, 5); self.act2 = nn.ReLU(); self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(400, 120); self.act3 = nn.ReLU()
        self.fc2 = nn.Linear(120, 84); self.act4 = nn.ReLU()
        self.fc3 = nn.Linear(84, k)
    def forward(self, x):
        x = self.pool1(self.act1(self.conv1(x))); x = self.pool2(self.act2(self.conv2(x)))
        x = self.act3(self.fc1(self.flatten(x))); x = self.act4(self.fc2(x))
        return self.fc3(x)

class VGG11(nn.Module):   # torchvision's VGG with cfg 'A', 32x32 input, 512-wide classifier
    def __init__(self, c, k, bn):
        super().__init__()
        layers = []
        for v in [64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M']:
            if v == 'M': layers.append(nn.MaxPool2d(2, 2))
            else:
                layers.append(nn.Conv2d(c, v, 3, padding=1))
                if bn: layers.append(nn.BatchNorm2d(v))
                layers.append(nn.ReLU(inplace=True)); c = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(512, 512), nn.ReLU(True), nn.Dropout(0.5),
                                        nn.Linear(512, 512), nn.ReLU(True), nn.Dropout(0.5), nn.Linear(512, k))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
                if m.bias is not None: nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1); nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01); nn.init.constant_(m.bias, 0)
    def forward(self, x): return self.classifier(torch.flatten(self.features(x), 1))

class BasicBlock(nn.Module):   # torchvision's
    def __init__(self, inp, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inp, planes, 3, stride, 1, bias=False); self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False); self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = nn.Sequential(nn.Conv2d(inp, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)) if stride != 1 or inp != planes else None
    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x))); out = self.bn2(self.conv2(out))
        idt = self.downsample(x) if self.downsample is not None else x
        out += idt
        return self.relu(out)

class ResNet18(nn.Module):   # torchvision's resnet18 with a CIFAR stem: conv 3x3 stride 1, no maxpool
    def __init__(self, c, k):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(c, 64, 3, 1, 1, bias=False); self.bn1 = nn.BatchNorm2d(64); self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make(64, 2, 1); self.layer2 = self._make(128, 2, 2)
        self.layer3 = self._make(256, 2, 2); self.layer4 = self._make(512, 2, 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1)); self.fc = nn.Linear(512, k)
        for m in self.modules():
            if isinstance(m, nn.Conv2d): nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)): nn.init.constant_(m.weight, 1); nn.init.constant_(m.bias, 0)
    def _make(self, planes, n, stride):
        layers = []
        for i in range(n):
            layers.append(BasicBlock(self.inplanes, planes, stride if i == 0 else 1)); self.inplanes = planes
        return nn.Sequential(*layers)
    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))

def double_conv(cin, cout, norm, groups):
    def nrm(c):
        if norm == 'batch': return [nn.BatchNorm2d(c)]
        if norm == 'group': return [nn.GroupNorm(min(groups, c), c)]
        return []
    b = norm == 'none'
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=b), *nrm(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=b), *nrm(cout), nn.ReLU(inplace=True))
class Down(nn.Module):
    def __init__(self, cin, cout, norm, groups):
        super().__init__(); self.pool = nn.MaxPool2d(2); self.conv = double_conv(cin, cout, norm, groups)
    def forward(self, x): return self.conv(self.pool(x))
class Up(nn.Module):
    def __init__(self, cin, cout, mode, norm, groups):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cout, 2, stride=2) if mode == 'transpose' else nn.Sequential(nn.Upsample(scale_factor=2, mode='bilinear', align_corners=True), nn.Conv2d(cin, cout, 1))
        self.conv = double_conv(2 * cout, cout, norm, groups)
    def forward(self, x, skip):
        u = self.up(x)
        dy, dx = skip.size(2) - u.size(2), skip.size(3) - u.size(3)
        u = F.pad(u, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([skip, u], 1))
class UNet(nn.Module):
    def __init__(self, c, k, depth, w, mode, norm, groups=8):
        super().__init__()
        self.depth = depth
        self.encoder = nn.Module(); self.encoder.stem = double_conv(c, w, norm, groups)
        for i in range(1, depth + 1): setattr(self.encoder, 'down%d' % i, Down(w * 2 ** (i - 1), w * 2 ** i, norm, groups))
        self.decoder = nn.Module()
        for i in range(depth, 0, -1): setattr(self.decoder, 'up%d' % i, Up(w * 2 ** i, w * 2 ** (i - 1), mode, norm, groups))
        self.head = nn.Conv2d(w, k, 1)
    def forward(self, x):
        f = [self.encoder.stem(x)]
        for i in range(1, self.depth + 1): f.append(getattr(self.encoder, 'down%d' % i)(f[-1]))
        y = f[-1]
        for i in range(self.depth, 0, -1): y = getattr(self.decoder, 'up%d' % i)(y, f[i - 1])
        return self.head(y)

res = {}
for i, c in enumerate(inp['zoo']):
    torch.manual_seed(700 + i)
    m = eval(c['py'])
    sd = m.state_dict()
    r = {'keys': list(sd.keys()), 'shapes': [list(v.shape) for v in sd.values()], 'modules': [n for n, _ in m.named_modules()]}
    save_st(sd, '%s/%s.init.safetensors' % (inp['dir'], c['name']))
    # other weights and running statistics, so that loading them matters
    g = torch.Generator().manual_seed(800 + i)
    with torch.no_grad():
        for k, v in sd.items():
            if k.endswith('num_batches_tracked'): v.fill_(3)
            elif k.endswith('running_var'): v.copy_(torch.rand(v.shape, generator=g) + 0.5)
            elif k.endswith('running_mean'): v.copy_(0.1 * torch.randn(v.shape, generator=g))
            else: v.add_(0.05 * torch.randn(v.shape, generator=g))
    save_st(sd, '%s/%s.weights.safetensors' % (inp['dir'], c['name']))
    x = torch.randn(c['shape'], generator=g)
    r['x'] = L(x)
    with torch.no_grad():
        m.eval(); r['yEval'] = L(m(x))
        r['yTrain'] = None; r['stateAfterTrain'] = None
        if c['train']:
            m.train(); r['yTrain'] = L(m(x))
            r['stateAfterTrain'] = {k: L(v) for k, v in m.state_dict().items() if 'running' in k or 'num_batches' in k}
    res[c['name']] = r

# a state dict Keel wrote, loaded into PyTorch's LeNet-5
lenet = LeNet5(1, 10)
lenet.load_state_dict(load_st(inp['dir'] + '/keel-lenet5.safetensors'))
lenet.eval()
with torch.no_grad():
    x = torch.tensor(inp['lenetX'], dtype=torch.float32)
    out = {'zoo': res, 'fromKeel': L(lenet(x))}
`;

let zooRefs: Record<string, ZooRef>;
let fromKeelRef: Nested;
let lenetX: number[][][][];
let keelLenetOut: Nested;

before(() => {
  if (noTorch) return;
  const layers = LAYERS.map((c) => ({ name: c.name, py: c.py, shape: c.shape, dtype: c.dtype ?? 'float32', modes: c.modes ?? ['train'], scale: c.scale ?? 1 }));
  const r = runTorch<{ layers: Record<string, LayerRef>; init: InitRef }>(LAYER_PY, { layers });
  layerRefs = r.layers;
  initRef = r.init;

  // a LeNet-5 state dict from Keel for PyTorch to load
  keel.scope(() => {
    keel.manualSeed(31);
    const lenet = new nn.zoo.LeNet5();
    nn.saveStateDict(lenet, join(DIR, 'keel-lenet5.safetensors'));
    const x = keel.randn([2, 1, 28, 28]);
    lenetX = x.toArray();
    keelLenetOut = keel.noGrad(() => lenet.eval().call(x) as Tensor).toArray();
    lenet.dispose();
  });
  const z = runTorch<{ zoo: Record<string, ZooRef>; fromKeel: Nested }>(ZOO_PY, {
    dir: DIR,
    zoo: ZOO.map((c) => ({ name: c.name, py: c.py, shape: c.shape, train: c.train })),
    lenetX,
  });
  zooRefs = z.zoo;
  fromKeelRef = z.fromKeel;
});

function tol(dtype: 'float32' | 'float64'): { rtol: number; atol: number } {
  return dtype === 'float64' ? { rtol: 1e-12, atol: 1e-12 } : { rtol: 1e-5, atol: 1e-6 };
}

/** Asserts bitwise-equal values (initial parameters). */
function assertExact(actual: Tensor, expected: Nested, what: string): void {
  assertClose(actual.toArray(), expected, { rtol: 0, atol: 0, what });
}

// ---- tests ----------------------------------------------------------------------

for (const [i, c] of LAYERS.entries()) {
  test(`${c.name}: seeded init, forward, gradients and buffers equal PyTorch's`, { skip: noTorch }, () => {
    const ref = layerRefs[c.name];
    const dtype = c.dtype ?? 'float32';
    const t = tol(dtype);
    keel.scope(() => {
      keel.manualSeed(100 + i);
      const m = c.keel();
      const state = m.stateDict();
      assert.deepEqual(Object.keys(state), ref.keys, 'state dict keys (in order)');
      assert.deepEqual(Object.values(state).map((v) => v.shape), ref.shapes, 'state dict shapes');
      for (const [k, v] of Object.entries(state)) assertExact(v, ref.state0[k], `${c.name} initial ${k}`);
      const modes = c.modes ?? ['train'];
      modes.forEach((mode, j) => {
        const step = ref.steps[j];
        m.train(mode === 'train');
        const x = keel.tensor(step.x as number[], { dtype, requiresGrad: true });
        keel.manualSeed(9000 + 10 * i + j);
        const y = m.call(x) as Tensor;
        assertClose(y.toArray(), step.y, { ...t, what: `${c.name} ${mode} #${j} output` });
        y.mul(keel.tensor(step.r as number[], { dtype })).sum().backward();
        assertClose(x.grad!.toArray(), step.gx, { ...t, atol: t.atol * 10, what: `${c.name} ${mode} #${j} input gradient` });
        for (const [k, p] of m.namedParameters()) {
          assertClose(p.grad!.toArray(), step.grads[k], { ...t, atol: t.atol * 10, what: `${c.name} ${mode} #${j} ${k}.grad` });
        }
        // parameters unchanged, running statistics updated as PyTorch's
        for (const [k, v] of Object.entries(m.stateDict())) {
          assertClose(v.toArray(), step.state[k], { ...t, what: `${c.name} ${mode} #${j} ${k} after forward` });
        }
        m.zeroGrad();
      });
      m.dispose();
    });
  });
}

test('BatchNorm: num_batches_tracked is int64 and counts training forwards only; batch of one refused', () => {
  keel.scope(() => {
    const bn = new nn.BatchNorm2d(2);
    assert.equal(bn.buffer('num_batches_tracked')!.dtype, 'int64');
    const x = keel.randn([3, 2, 2, 2]);
    bn.call(x);
    bn.call(x);
    bn.eval().call(x);
    assert.equal(bn.buffer('num_batches_tracked')!.item(), 2);
    // Module.to(dtype) converts floating tensors only, as torch's
    bn.to('float64');
    assert.equal(bn.runningMean!.dtype, 'float64');
    assert.equal(bn.weight!.dtype, 'float64');
    assert.equal(bn.buffer('num_batches_tracked')!.dtype, 'int64');
    assert.equal(bn.buffer('num_batches_tracked')!.item(), 2);
    assert.throws(() => new nn.BatchNorm1d(3).call(keel.randn([1, 3])), /more than 1 value per channel/);
    assert.throws(() => new nn.BatchNorm2d(3).call(keel.randn([2, 3])), /expected 4D input/);
  });
});

test('keel.nn.init draws the same numbers as torch.nn.init, and calculateGain agrees', { skip: noTorch }, () => {
  for (const [k, v] of Object.entries(initRef.gains)) {
    const [name, param] = k.split('_0.') as [keel.nn.init.Nonlinearity, string?];
    const g = param === undefined ? nn.init.calculateGain(name) : nn.init.calculateGain(name, Number(`0.${param}`));
    assert.equal(g, v, `calculateGain(${k})`);
  }
  keel.scope(() => {
    const I = nn.init;
    keel.manualSeed(42);
    const t: Record<string, Tensor> = {};
    const mk = (name: string, ...shape: number[]): Tensor => (t[name] = keel.empty(shape));
    I.kaimingUniform_(mk('ku', 6, 4, 3, 3));
    I.kaimingUniform_(mk('ku_a', 5, 7), { a: Math.sqrt(5) });
    I.kaimingUniform_(mk('ku_out_relu', 6, 4, 3, 3), { mode: 'fan_out', nonlinearity: 'relu' });
    I.kaimingNormal_(mk('kn', 8, 3, 2, 2));
    I.kaimingNormal_(mk('kn_out', 8, 3, 2, 2), { mode: 'fanOut', nonlinearity: 'relu' });
    I.kaimingNormal_(mk('kn_leaky', 5, 6), { a: 0.2, nonlinearity: 'leaky_relu' });
    I.xavierUniform_(mk('xu', 5, 9));
    I.xavierUniform_(mk('xu_gain', 4, 3, 3, 3), { gain: I.calculateGain('tanh') });
    I.xavierNormal_(mk('xn', 5, 9));
    I.xavierNormal_(mk('xn_gain', 6, 2), { gain: 2.5 });
    I.normal_(mk('normal', 4, 5), 0.5, 2.0);
    I.uniform_(mk('uniform', 4, 5), -3.0, 0.5);
    I.zeros_(mk('zeros', 3));
    I.ones_(mk('ones', 2, 2));
    I.constant_(mk('constant', 3, 2), 0.25);
    I.truncNormal_(mk('trunc', 50, 40), { mean: 0.5, std: 1.5, a: -1, b: 2 });
    for (const [k, v] of Object.entries(t)) {
      if (k === 'trunc') {
        // the bounds go through erf, whose last bit may differ from Python's math.erf
        assertClose(v.toArray(), initRef.tensors[k], { rtol: 1e-6, atol: 1e-6, what: 'truncNormal_' });
        assert.ok((v.min().item() as number) >= -1 && (v.max().item() as number) <= 2);
      } else {
        assertExact(v, initRef.tensors[k], `init ${k}`);
      }
    }
    assert.throws(() => I.kaimingUniform_(keel.empty([3])), /fewer than 2 dimensions/);
    assert.throws(() => I.kaimingNormal_(keel.empty([3, 3]), { mode: 'fan_avg' as 'fan_in' }), /mode 'fan_avg' not supported/);
  });
});

for (const [i, c] of ZOO.entries()) {
  test(`zoo ${c.name}: module paths, keys, shapes and seeded init as PyTorch's; outputs with PyTorch's weights`, { skip: noTorch }, () => {
    const ref = zooRefs[c.name];
    keel.scope(() => {
      keel.manualSeed(700 + i);
      const m = c.keel();
      assert.deepEqual(m.namedModules().map(([n]) => n), ref.modules, 'namedModules paths');
      const state = m.stateDict();
      assert.deepEqual(Object.keys(state), ref.keys, 'state dict keys (in order)');
      assert.deepEqual(Object.values(state).map((v) => v.shape), ref.shapes, 'state dict shapes');
      // the same initial numbers, every tensor
      const init = keel.safetensors.loadFile(join(DIR, `${c.name}.init.safetensors`));
      let worst = 0;
      for (const [k, v] of Object.entries(state)) {
        const diff = v.sub(init[k]).abs().max().item() as number;
        worst = Math.max(worst, diff);
        assert.ok(diff === 0, `${c.name} initial ${k} differs from PyTorch's by up to ${diff}`);
      }
      assert.equal(worst, 0);
      // PyTorch's (perturbed) weights and statistics, from Python's safetensors file
      nn.loadStateDict(m, join(DIR, `${c.name}.weights.safetensors`));
      const x = keel.tensor(ref.x as number[]);
      const yEval = keel.noGrad(() => m.eval().call(x) as Tensor);
      assertClose(yEval.toArray(), ref.yEval, { rtol: 1e-4, atol: 1e-5, what: `${c.name} eval output` });
      if (c.train) {
        const yTrain = keel.noGrad(() => m.train().call(x) as Tensor);
        assertClose(yTrain.toArray(), ref.yTrain!, { rtol: 1e-4, atol: 1e-5, what: `${c.name} train output` });
        const after = m.stateDict();
        for (const [k, v] of Object.entries(ref.stateAfterTrain!)) {
          assertClose(after[k].toArray(), v, { rtol: 1e-4, atol: 1e-6, what: `${c.name} ${k} after a training forward` });
        }
      }
      m.dispose();
    });
  });
}

test('a Keel state dict loads into PyTorch (safetensors) and gives the same outputs', { skip: noTorch }, () => {
  assertClose(keelLenetOut, fromKeelRef, { rtol: 1e-5, atol: 1e-6, what: 'LeNet-5 output, PyTorch with Keel weights' });
});

test('state dict round trip through safetensors: every tensor, dtype and key', () => {
  keel.scope(() => {
    keel.manualSeed(3);
    const a = new nn.zoo.UNet({ depth: 2, width: 4 });
    // non-default statistics so that buffers are checked too
    const x = keel.randn([2, 3, 8, 8]);
    keel.noGrad(() => a.call(x));
    const path = join(DIR, 'roundtrip.safetensors');
    nn.saveStateDict(a, path, { note: 'round trip' });
    const header = keel.safetensors.readHeader(path);
    assert.deepEqual(header.metadata, { note: 'round trip' });
    assert.equal(header.tensors['encoder.stem.1.num_batches_tracked'].dtype, 'int64');
    keel.manualSeed(4);
    const b = new nn.zoo.UNet({ depth: 2, width: 4 });
    assert.notEqual(b.stateDict()['head.weight'].sub(a.stateDict()['head.weight']).abs().max().item(), 0);
    const res = nn.loadStateDict(b, path);
    assert.deepEqual(res, { missingKeys: [], unexpectedKeys: [] });
    const sa = a.stateDict();
    const sb = b.stateDict();
    assert.deepEqual(Object.keys(sb), Object.keys(sa));
    for (const [k, v] of Object.entries(sa)) {
      assert.equal(sb[k].dtype, v.dtype, k);
      assert.deepEqual(sb[k].toArray(), v.toArray(), k);
    }
    assert.equal(sb['encoder.stem.1.num_batches_tracked'].item(), 1);
    a.eval();
    b.eval();
    assert.deepEqual((keel.noGrad(() => b.call(x)) as Tensor).toArray(), (keel.noGrad(() => a.call(x)) as Tensor).toArray());
    a.dispose();
    b.dispose();
  });
});

test('loadStateDict: strict errors name the missing, unexpected and mis-shaped keys', () => {
  keel.scope(() => {
    const m = new nn.Sequential(new nn.Linear(3, 4), new nn.BatchNorm1d(4), new nn.Linear(4, 2));
    const good = (): Record<string, Tensor> => Object.fromEntries(Object.entries(m.stateDict()).map(([k, v]) => [k, v.clone()]));
    const missing = good();
    delete missing['1.running_var'];
    assert.throws(() => m.loadStateDict(missing), /missing: 1\.running_var/);
    const extra = { ...good(), '3.weight': keel.zeros([2, 2]) };
    assert.throws(() => m.loadStateDict(extra), /unexpected: 3\.weight/);
    const shaped = { ...good(), '2.weight': keel.zeros([2, 5]) };
    assert.throws(() => m.loadStateDict(shaped), /2\.weight: expected \[2, 4\], got \[2, 5\]/);
    // non-strict: reports instead, still loads what matches, still refuses a wrong shape
    const partial = good();
    delete partial['0.bias'];
    partial['0.weight'] = keel.full([4, 3], 0.5);
    partial['head.weight'] = keel.zeros([1]);
    const r = m.loadStateDict(partial, { strict: false });
    assert.deepEqual(r, { missingKeys: ['0.bias'], unexpectedKeys: ['head.weight'] });
    assert.deepEqual((m.stateDict()['0.weight'].toArray() as number[][]).flat(), new Array(12).fill(0.5));
    assert.throws(() => m.loadStateDict(shaped, { strict: false }), /2\.weight/);
    // from a file: the error names the file and the key
    const other = new nn.Sequential(new nn.Linear(3, 4), new nn.BatchNorm1d(4), new nn.Linear(4, 3));
    const path = join(DIR, 'other.safetensors');
    nn.saveStateDict(other, path);
    assert.throws(() => nn.loadStateDict(m, path), (e: Error) => e.message.includes(path) && /2\.weight: expected \[2, 4\], got \[3, 4\]/.test(e.message));
    m.dispose();
    other.dispose();
  });
});

test('namedModules, namedParameters and the module path seen during forward are dotted paths', () => {
  keel.scope(() => {
    const net = new nn.zoo.ResNet18({ width: 4 });
    const names = net.namedModules().map(([n]) => n);
    for (const p of ['', 'conv1', 'layer1.0.conv1', 'layer2.0.downsample', 'layer2.0.downsample.0', 'layer4.1.bn2', 'fc']) assert.ok(names.includes(p), p);
    assert.ok(!names.includes('layer1.0.downsample'), 'layer1 keeps its shape: no downsample');
    assert.deepEqual(net.namedParameters().slice(0, 3).map(([n]) => n), ['conv1.weight', 'bn1.weight', 'bn1.bias']);
    const unet = new nn.zoo.UNet({ depth: 3, width: 4 });
    const unetNames = unet.namedModules().map(([n]) => n);
    for (const p of ['encoder.stem', 'encoder.down3.conv', 'decoder.up3.up', 'decoder.up3.conv', 'decoder.up1.conv.0', 'head']) assert.ok(unetNames.includes(p), p);
    // the path of the running module, as the guard reads it
    const seen: string[] = [];
    for (const [name, m] of unet.namedModules()) {
      if (name === 'decoder.up3.conv' || name === 'encoder.down2.conv.0' || name === 'head') {
        m.registerForwardHook(() => seen.push(nn.currentModulePath()));
      }
    }
    keel.noGrad(() => unet.call(keel.randn([1, 3, 16, 16])));
    assert.deepEqual(seen, ['encoder.down2.conv.0', 'decoder.up3.conv', 'head']);
    // ModuleList and ModuleDict children are named as PyTorch names them
    class Heads extends nn.Module {
      heads = new nn.ModuleList([new nn.Linear(2, 2), new nn.Linear(2, 3)]);
      extra = new nn.ModuleDict({ proj: new nn.Linear(3, 1) });
      forward(x: Tensor): Tensor {
        return x;
      }
    }
    const h = new Heads();
    assert.deepEqual(Object.keys(h.stateDict()), ['heads.0.weight', 'heads.0.bias', 'heads.1.weight', 'heads.1.bias', 'extra.proj.weight', 'extra.proj.bias']);
    assert.equal((h.heads.get(1) as keel.nn.Linear).outFeatures, 3);
    assert.equal([...h.heads].length, 2);
    const named = new nn.Sequential({ conv: new nn.Conv2d(1, 2, 3), act: new nn.ReLU(), pool: new nn.AdaptiveAvgPool2d(1) });
    assert.deepEqual(Object.keys(named.stateDict()), ['conv.weight', 'conv.bias']);
    assert.deepEqual((named.call(keel.randn([1, 1, 5, 5])) as Tensor).shape, [1, 2, 1, 1]);
    // containers with more than ten children keep numeric order
    const seq = new nn.Sequential(...Array.from({ length: 12 }, () => new nn.Identity()));
    assert.deepEqual(seq.namedChildren().map(([n]) => n), Array.from({ length: 12 }, (_, i) => String(i)));
    net.dispose();
    unet.dispose();
    h.dispose();
  });
});

test('train()/eval() reach every submodule; Dropout is the identity in eval mode', () => {
  keel.scope(() => {
    const m = new nn.zoo.VGG11({ batchNorm: true });
    m.eval();
    assert.ok(m.modules().every((s) => !s.training));
    m.train();
    assert.ok(m.modules().every((s) => s.training));
    const d = new nn.Dropout(0.9).eval();
    const x = keel.randn([4, 4]);
    assert.deepEqual((d.call(x) as Tensor).toArray(), x.toArray());
    m.dispose();
  });
});

test('layer options are checked with clear errors', () => {
  assert.throws(() => new nn.Conv2d(3, 4, 3, { groups: 2 }), /inChannels \(3\) must be divisible by groups \(2\)/);
  assert.throws(() => new nn.Conv2d(4, 4, 3, { padding: 'same', stride: 2 }), /'same' is not supported for strided/);
  assert.throws(() => new nn.Conv2d(4, 4, 0), /kernelSize must be an integer ≥ 1/);
  assert.throws(() => new nn.GroupNorm(4, 6), /divisible by numGroups/);
  assert.throws(() => new nn.Dropout(1.5), /probability must be in \[0, 1\]/);
  assert.throws(() => new nn.Upsample({ scaleFactor: 2, alignCorners: true }), /alignCorners only applies to 'bilinear'/);
  assert.throws(() => new nn.Upsample({}), /exactly one of size and scaleFactor/);
  assert.throws(() => nn.zoo.createModel('alexnet'), /unknown model 'alexnet'/);
  keel.scope(() => {
    assert.throws(() => new nn.zoo.VGG11().call(keel.randn([1, 3, 28, 28])), /expected 32×32 inputs/);
    const ct = new nn.ConvTranspose2d(2, 2, 3, { stride: 2, padding: 1 });
    const x = keel.randn([1, 2, 4, 4]);
    assert.deepEqual((ct.call(x) as Tensor).shape, [1, 2, 7, 7]);
    assert.deepEqual((ct.call(x, [8, 8]) as Tensor).shape, [1, 2, 8, 8]);
    assert.throws(() => ct.call(x, [9, 9]), /not reachable/);
  });
});

test('createModel builds the zoo by name; a forward frees its temporaries', () => {
  keel.scope(() => {
    const lenet = nn.zoo.createModel('lenet5');
    const x = keel.randn([2, 1, 28, 28]);
    const before = keel.memory().tensors;
    const y = keel.noGrad(() => lenet.call(x) as Tensor);
    assert.deepEqual(y.shape, [2, 10]);
    assert.equal(keel.memory().tensors, before + 1, 'only the output is left');
    assert.deepEqual((nn.zoo.createModel('mlp', { hidden: [8] }).call(x) as Tensor).shape, [2, 10]);
    assert.deepEqual((nn.zoo.createModel('resnet18', { width: 4, numClasses: 7 }).call(keel.randn([2, 3, 32, 32])) as Tensor).shape, [2, 7]);
    const unet = nn.zoo.createModel('unet', { depth: 2, width: 4, numClasses: 3 });
    assert.deepEqual((unet.call(keel.randn([1, 3, 17, 12])) as Tensor).shape, [1, 3, 17, 12]);
    assert.match(String(new nn.Linear(3, 2)), /Linear\(in_features=3, out_features=2, bias=True\)/);
  });
});
