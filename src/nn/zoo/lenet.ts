// LeNet-5 for 28×28 grayscale input (Fashion-MNIST), LeCun et al. 1998 with
// the modern ReLU and max pooling by default:
//
//   conv1  Conv2d(inChannels, 6, 5, padding 2)  → 6×28×28, act1, pool1 2×2 → 6×14×14
//   conv2  Conv2d(6, 16, 5)                      → 16×10×10, act2, pool2 2×2 → 16×5×5
//   flatten → 400
//   fc1    Linear(400, 120), act3
//   fc2    Linear(120, 84),  act4
//   fc3    Linear(84, numClasses)
//
// (The padding 2 lets a 28×28 image play the original's 32×32 input.)
// activation: 'tanh' and pool: 'avg' give the 1998 network's shape; the
// parameters are initialised as torch.nn's layers default.
import type { Tensor } from '../../core/tensor.js';
import { scope } from '../../core/memory.js';
import { Conv2d } from '../conv.js';
import { Flatten } from '../flatten.js';
import { Linear } from '../linear.js';
import { Module } from '../module.js';
import { AvgPool2d, MaxPool2d } from '../pooling.js';
import { activation, type ActivationName } from './mlp.js';

export interface LeNet5Options {
  inChannels?: number;
  numClasses?: number;
  activation?: ActivationName;
  pool?: 'max' | 'avg';
  /** Input height = width (default 28). */
  inputSize?: number;
}

export class LeNet5 extends Module {
  conv1: Conv2d;
  act1: Module<[Tensor], Tensor>;
  pool1: Module<[Tensor], Tensor>;
  conv2: Conv2d;
  act2: Module<[Tensor], Tensor>;
  pool2: Module<[Tensor], Tensor>;
  flatten: Flatten;
  fc1: Linear;
  act3: Module<[Tensor], Tensor>;
  fc2: Linear;
  act4: Module<[Tensor], Tensor>;
  fc3: Linear;

  constructor({ inChannels = 1, numClasses = 10, activation: act = 'relu', pool = 'max', inputSize = 28 }: LeNet5Options = {}) {
    super();
    const makePool = (): Module<[Tensor], Tensor> => (pool === 'max' ? new MaxPool2d(2) : new AvgPool2d(2));
    const s = Math.floor((Math.floor(inputSize / 2) - 4) / 2);
    if (s < 1) throw new RangeError(`LeNet5: inputSize ${inputSize} is too small (at least 10)`);
    this.conv1 = new Conv2d(inChannels, 6, 5, { padding: 2 });
    this.act1 = activation(act);
    this.pool1 = makePool();
    this.conv2 = new Conv2d(6, 16, 5);
    this.act2 = activation(act);
    this.pool2 = makePool();
    this.flatten = new Flatten();
    this.fc1 = new Linear(16 * s * s, 120);
    this.act3 = activation(act);
    this.fc2 = new Linear(120, 84);
    this.act4 = activation(act);
    this.fc3 = new Linear(84, numClasses);
  }

  forward(x: Tensor): Tensor {
    return scope(() => {
      let h = this.pool1.call(this.act1.call(this.conv1.call(x)));
      h = this.pool2.call(this.act2.call(this.conv2.call(h)));
      h = this.act3.call(this.fc1.call(this.flatten.call(h)));
      h = this.act4.call(this.fc2.call(h));
      return this.fc3.call(h) as Tensor;
    });
  }
}
