// PyTorch reference models for the benches, as Python source to splice into
// each bench's worker script (one definition, the same architecture as Keel's zoo).
// Needs `import torch.nn as nn` before it.

/** keel.nn.zoo.LeNet5 in PyTorch. */
export const TORCH_LENET5 = `
class LeNet5(nn.Module):
    # as keel.nn.zoo.LeNet5: conv 1→6 5×5 pad 2, ReLU, max pool 2, conv 6→16 5×5, ReLU, max pool 2, 400→120→84→10
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.act1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.act2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(400, 120)
        self.act3 = nn.ReLU()
        self.fc2 = nn.Linear(120, 84)
        self.act4 = nn.ReLU()
        self.fc3 = nn.Linear(84, 10)
    def forward(self, x):
        x = self.pool1(self.act1(self.conv1(x)))
        x = self.pool2(self.act2(self.conv2(x)))
        x = self.act3(self.fc1(self.flatten(x)))
        x = self.act4(self.fc2(x))
        return self.fc3(x)
`;

/** keel.nn.zoo.ResNet18 (CIFAR-style stem, width 64) in PyTorch, torchvision's BasicBlock. Needs `import torch`. */
export const TORCH_RESNET18 = `
class BasicBlock(nn.Module):
    # torchvision's BasicBlock
    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))
    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = self.downsample(x) if self.downsample is not None else x
        out += identity
        return self.relu(out)

class ResNet18(nn.Module):
    # as keel.nn.zoo.ResNet18: CIFAR-style 3×3 stride-1 stem, no max pool, [2, 2, 2, 2] BasicBlocks, width 64
    def __init__(self, in_channels=3, num_classes=10, width=64):
        super().__init__()
        self.inplanes = width
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._stage(width, 2, 1)
        self.layer2 = self._stage(width * 2, 2, 2)
        self.layer3 = self._stage(width * 4, 2, 2)
        self.layer4 = self._stage(width * 8, 2, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width * 8, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
    def _stage(self, planes, n, stride):
        blocks = []
        for i in range(n):
            blocks.append(BasicBlock(self.inplanes, planes, stride if i == 0 else 1))
            self.inplanes = planes
        return nn.Sequential(*blocks)
    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))
`;
