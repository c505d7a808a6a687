"""``History``: the per-epoch logs of ``fit``, and a PNG plot of the curves."""

from __future__ import annotations

import math

__all__ = ["History"]


class History:
    """``history.history[name]`` is the list of that value per epoch (Keras' layout).

    >>> h = History(); h.append(0, {"loss": 1.0}); h.append(1, {"loss": 0.5}); h.history["loss"]
    [1.0, 0.5]
    """

    def __init__(self):
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def append(self, epoch: int, logs: dict) -> None:
        self.epoch.append(epoch)
        n = len(self.epoch)
        for k, v in logs.items():
            col = self.history.setdefault(k, [])
            col.extend([float("nan")] * (n - 1 - len(col)))
            col.append(float(v) if isinstance(v, (int, float)) else v)

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={sorted(self.history)})"

    def state_dict(self) -> dict:
        return {"history": {k: list(v) for k, v in self.history.items()}, "epoch": list(self.epoch)}

    def load_state_dict(self, state: dict) -> None:
        self.history = {k: list(v) for k, v in state.get("history", {}).items()}
        self.epoch = [int(e) for e in state.get("epoch", [])]

    def plot(self, path: str, keys=None) -> str:
        """Write a PNG of the curves (loss-like values on one axis, accuracy-like on another).

        Needs matplotlib (``pip install danlu[plot]``). The file is written atomically.
        """
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("History.plot needs matplotlib: pip install 'danlu[plot]'") from None
        keys = list(keys or self.history)
        acc = [k for k in keys if "acc" in k or k.startswith(("top", "val_top"))]
        rest = [k for k in keys if k not in acc and k != "lr"]
        ncols = 2 if acc else 1
        fig, axes = plt.subplots(1, ncols, figsize=(5.5 * ncols, 4), squeeze=False)
        epochs = [e + 1 for e in self.epoch]
        for ax, group, title in ((axes[0][0], rest, "loss"), (axes[0][-1], acc, "metrics")):
            if not group:
                continue
            for k in group:
                ys = [v if isinstance(v, float) and math.isfinite(v) else float("nan") for v in self.history[k]]
                ax.plot(epochs[:len(ys)], ys, marker="o", label=k)
            ax.set_xlabel("epoch")
            ax.set_title(title)
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        from ..core.atomic import atomic_path

        try:
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format="png", dpi=100)
        finally:
            plt.close(fig)
        return path
