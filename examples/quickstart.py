"""Recover an unknown exponent p from noisy samples of y = x ** p, by gradient descent with
danlu's autograd."""

import danlu as dl


def main() -> None:
    dl.manual_seed(0)
    true_p = 2.7
    x = dl.rand(256) * 2 + 0.5                      # samples in [0.5, 2.5)
    y = x ** true_p + 0.05 * dl.randn(256)          # noisy observations

    p = dl.tensor(1.0, requires_grad=True)          # initial guess
    lr = 0.002
    for step in range(201):
        loss = ((x ** p - y) ** 2).mean()
        loss.backward()
        with dl.no_grad():
            p -= lr * p.grad
        p.grad = None
        if step % 20 == 0:
            print(f"step {step:3d}  loss {loss.item():10.6f}  p {p.item():.4f}")
    print(f"recovered p = {p.item():.4f} (true p = {true_p})")


if __name__ == "__main__":
    main()
