"""The PyTorch MNIST example, ported to danlu by changing imports.

Same network (conv 32, conv 64, max-pool, dropout, fc 9216 -> 128 -> 10), optimizer (Adadelta, lr 1.0)
and schedule (StepLR, gamma 0.7). It trains on MNIST when its IDX files are in ``--data``
(``<data>/MNIST/raw/``, or pass ``--download`` where the internet is reachable), else on the 8x8 Digits
that ship with scikit-learn, upscaled to 28x28.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import danlu as dl
import danlu.nn as nn
import danlu.nn.functional as F
import danlu.optim as optim
from danlu.data import DataLoader, TensorDataset
from danlu.data import datasets, transforms
from danlu.optim.lr_scheduler import StepLR


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = dl.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.dropout2(x)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


def train(args, model, train_loader, optimizer, epoch):
    model.train()
    for batch_idx, (data, target) in enumerate(train_loader):
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        if batch_idx % args.log_interval == 0:
            print(f"Train Epoch: {epoch} [{batch_idx * len(data)}/{len(train_loader.dataset)} "
                  f"({100.0 * batch_idx / len(train_loader):.0f}%)]\tLoss: {loss.item():.6f}")


def test(model, test_loader):
    model.eval()
    test_loss, correct = 0.0, 0
    with dl.no_grad():
        for data, target in test_loader:
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction="sum").item()
            pred = output.argmax(dim=1, keepdim=True)
            correct += pred.eq(target.view_as(pred)).sum().item()
    n = len(test_loader.dataset)
    print(f"\nTest set: Average loss: {test_loss / n:.4f}, Accuracy: {correct}/{n} ({100.0 * correct / n:.0f}%)\n")
    return correct / n


def digits_as_mnist(train: bool) -> TensorDataset:
    """Digits upscaled from 8x8 to 28x28 (bilinear), normalized like MNIST."""
    ds = datasets.Digits(train=train)
    x = dl.tensor(np.stack([ds[i][0] for i in range(len(ds))]))[:, None]            # (N, 1, 8, 8) in [0, 1]
    lin = np.clip((np.arange(28) + 0.5) * 8 / 28 - 0.5, 0, 7)
    lo = np.floor(lin).astype(np.int64)
    hi = np.minimum(lo + 1, 7)
    w = dl.tensor((lin - lo).astype(np.float32))
    rows = x[:, :, lo] * (1 - w[:, None]) + x[:, :, hi] * w[:, None]                  # (N, 1, 28, 8)
    img = rows[..., lo] * (1 - w) + rows[..., hi] * w                                 # (N, 1, 28, 28)
    img = (img - 0.1307) / 0.3081
    return TensorDataset(img, dl.tensor([ds[i][1] for i in range(len(ds))]))


def main():
    p = argparse.ArgumentParser(description="danlu MNIST Example")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--test-batch-size", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=14)
    p.add_argument("--lr", type=float, default=1.0)
    p.add_argument("--gamma", type=float, default=0.7)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--log-interval", type=int, default=10)
    p.add_argument("--data", default="../data")
    p.add_argument("--download", action="store_true")
    p.add_argument("--save-model", action="store_true")
    args = p.parse_args()
    dl.manual_seed(args.seed)

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    try:
        train_set = datasets.MNIST(args.data, train=True, download=args.download, transform=transform)
        test_set = datasets.MNIST(args.data, train=False, transform=transform)
        print("training on MNIST")
    except (RuntimeError, OSError) as e:
        print(f"MNIST not available ({str(e).splitlines()[0]}); training on Digits upscaled to 28x28")
        train_set, test_set = digits_as_mnist(True), digits_as_mnist(False)
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True)
    test_loader = DataLoader(test_set, batch_size=args.test_batch_size)

    model = Net()
    optimizer = optim.Adadelta(model.parameters(), lr=args.lr)
    scheduler = StepLR(optimizer, step_size=1, gamma=args.gamma)
    t0 = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        train(args, model, train_loader, optimizer, epoch)
        test(model, test_loader)
        scheduler.step()
    print(f"{args.epochs} epochs in {time.perf_counter() - t0:.1f} s")
    if args.save_model:
        dl.save(model.state_dict(), "mnist_cnn.safetensors")


if __name__ == "__main__":
    main()
