"""Train an MLP the TensorFlow 1 way: build a graph of placeholders, variables, a loss and a train op
once, then run it in a session, feeding a minibatch at every step.

Data: scikit-learn's 8x8 digits when scikit-learn is installed (danlu.data.datasets.Digits), else a
synthetic three-armed spiral. Run: ``python examples/graph_session.py``.
"""

import time

import numpy as np

import danlu as dl
import danlu.nn.functional as F
from danlu.graph.session import Graph, Session, Variable, global_variables_initializer, placeholder, train_op


def load_data():
    """(train x, train y, test x, test y, name) as float32 / int64 NumPy arrays."""
    try:
        from danlu.data.datasets import Digits

        def arrays(train):
            ds = Digits(train=train)
            xs = np.stack([np.asarray(ds[i][0], np.float32).reshape(-1) for i in range(len(ds))])
            return xs, np.array([ds[i][1] for i in range(len(ds))], np.int64)

        return (*arrays(True), *arrays(False), "digits (8x8, 10 classes)")
    except ImportError:
        rs = np.random.RandomState(0)
        n, k = 600, 3
        y = np.repeat(np.arange(k), n // k)
        r = rs.rand(n) * 1.0 + 0.05
        t = y * (2 * np.pi / k) + r * 4.0 + rs.randn(n) * 0.15
        x = np.stack([r * np.cos(t), r * np.sin(t)], 1).astype(np.float32)
        perm = rs.permutation(n)
        x, y = x[perm], y[perm].astype(np.int64)
        cut = int(n * 0.8)
        return x[:cut], y[:cut], x[cut:], y[cut:], "synthetic spiral (2-d, 3 classes; scikit-learn not installed)"


def glorot(rs, n_in, n_out):
    return (rs.randn(n_in, n_out) * np.sqrt(2.0 / (n_in + n_out))).astype(np.float32)


def main() -> None:
    x_train, y_train, x_test, y_test, name = load_data()
    n_in, n_classes, hidden = x_train.shape[1], int(y_train.max()) + 1, 64
    print(f"data: {name}: {len(x_train)} train / {len(x_test)} test examples")
    rs = np.random.RandomState(0)

    # -- build the graph once --------------------------------------------------------------------
    with Graph() as g:
        x = placeholder((None, n_in), name="x")                 # None: any batch size
        y = placeholder((None,), dtype=dl.int64, name="y")
        w1 = Variable(glorot(rs, n_in, hidden), name="w1")
        b1 = Variable(np.zeros(hidden, np.float32), name="b1")
        w2 = Variable(glorot(rs, hidden, hidden), name="w2")
        b2 = Variable(np.zeros(hidden, np.float32), name="b2")
        w3 = Variable(glorot(rs, hidden, n_classes), name="w3")
        b3 = Variable(np.zeros(n_classes, np.float32), name="b3")

        h = (x @ w1 + b1).relu()
        h = (h @ w2 + b2).relu()
        logits = h @ w3 + b3
        loss = F.cross_entropy(logits, y)
        accuracy = (logits.argmax(1) == y).float().mean()

        optimizer = dl.optim.Adam([w1, b1, w2, b2, w3, b3], lr=0.01)
        train = train_op(optimizer, loss)                      # TF1: optimizer.minimize(loss)
        init = global_variables_initializer()
    print(f"graph: {len(g.ir.nodes)} nodes")

    # -- run it ---------------------------------------------------------------------------------------
    batch, epochs = 64, 30
    with Session(g) as sess:
        sess.run(init)
        start = time.perf_counter()
        steps = 0
        for epoch in range(epochs):
            order = rs.permutation(len(x_train))
            total = 0.0
            for i in range(0, len(order), batch):
                idx = order[i:i + batch]                           # the last batch is smaller: same graph
                _, batch_loss = sess.run([train, loss], feed_dict={x: x_train[idx], y: y_train[idx]})
                total += float(batch_loss) * len(idx)
                steps += 1
            if epoch % 5 == 0 or epoch == epochs - 1:
                train_acc = sess.run(accuracy, {x: x_train, y: y_train})
                print(f"epoch {epoch:2d}  loss {total / len(order):.4f}  train accuracy {train_acc:.3f}")
        elapsed = time.perf_counter() - start
        test_loss, test_acc = sess.run([loss, accuracy], {x: x_test, y: y_test})
        print(f"test loss {test_loss:.4f}  test accuracy {test_acc:.3f}")
        print(f"{steps} steps in {elapsed:.2f} s ({1e3 * elapsed / steps:.2f} ms/step); "
              f"{g.compiles} subgraphs compiled")


if __name__ == "__main__":
    main()
