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
