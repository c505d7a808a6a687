"""An artifact runs in a fresh process that has only danlu and NumPy (not the model's code), and saves are
atomic: a save killed before its rename leaves the previous artifact loadable."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import danlu as dl
import danlu.export as export
from danlu.io import files

from .helpers import MLP, eager

REPO = pathlib.Path(__file__).resolve().parents[2]
posix_only = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals (SIGKILL)")

# Runs in a fresh interpreter: loads the artifact and the reference inputs/outputs (plain .npy files, no
# pickle), checks the outputs, and checks that nothing but danlu and NumPy was imported.
RUNNER = """
import sys
import numpy as np
import danlu as dl
import danlu.export
art, ref = sys.argv[1], sys.argv[2]
prog = danlu.export.load(art)
n_in, n_out = len(prog.input_specs), len(prog.output_specs)
for case in range(int(sys.argv[3])):
    ins = [dl.from_numpy(np.load(f"{ref}/in{case}_{i}.npy", allow_pickle=False)) for i in range(n_in)]
    out = prog(*ins)
    outs = list(out.values()) if isinstance(out, dict) else list(out) if isinstance(out, (tuple, list)) else [out]
    for i, o in enumerate(outs):
        want = np.load(f"{ref}/out{case}_{i}.npy", allow_pickle=False)
        assert o.numpy().dtype == want.dtype and o.numpy().shape == want.shape, (o, want)
        np.testing.assert_allclose(o.numpy(), want, rtol=1e-6, atol=1e-6)
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "tests", "pytest", "helpers"))
assert not bad, bad
print("ok", prog.signature)
"""


def run_fresh(art, ref, cases):
    # the child runs in the reference directory; the test modules are never imported there
    env = {**os.environ, "PYTHONPATH": str(REPO), "DANLU_CHECK": "1"}
    return subprocess.run([sys.executable, "-c", RUNNER, str(art), str(ref), str(cases)], env=env, cwd=ref,
                          capture_output=True, text=True, timeout=300)


def write_reference(ref, fn, inputs_list):
    ref.mkdir()
    for case, ins in enumerate(inputs_list):
        out = eager(fn, *ins)
        outs = list(out.values()) if isinstance(out, dict) else list(out) if isinstance(out, tuple) else [out]
        for i, x in enumerate(ins):
            np.save(ref / f"in{case}_{i}.npy", x.numpy())
        for i, o in enumerate(outs):
            np.save(ref / f"out{case}_{i}.npy", o.numpy())


def test_fresh_process_reproduces_reference_outputs(tmp_path):
    model = MLP(n_in=3, n_hidden=16, n_out=4)
    art = tmp_path / "mlp.dlx"
    export.save(model, (dl.randn(4, 3),), art, dynamic={0: {0: "batch"}})
    write_reference(tmp_path / "ref", model, [(dl.randn(4, 3),), (dl.randn(9, 3),), (dl.randn(1, 3),)])
    res = run_fresh(art, tmp_path / "ref", 3)
    assert res.returncode == 0, res.stderr
    assert "ok MLP(x: float32[batch, 3]) -> (logits: float32[batch, 4], probs: float32[batch, 4])" in res.stdout


def test_fresh_process_runs_control_flow_subgraphs(tmp_path):
    w = dl.randn(4, 4) * 0.5

    def rnn(x):
        def step(h, xt):
            h = dl.cond(xt.sum() > 0, lambda a, b: (a @ w + b).tanh(), lambda a, b: a * 0.5 + b, h, xt)
            return h, h.amax()
        return dl.scan(step, dl.zeros(4), x)

    art = tmp_path / "rnn.dlx"
    export.save(rnn, (dl.randn(5, 4),), art, dynamic={0: 0})
    write_reference(tmp_path / "ref", rnn, [(dl.randn(5, 4),), (dl.randn(12, 4),)])
    res = run_fresh(art, tmp_path / "ref", 2)
    assert res.returncode == 0, res.stderr


# Saves artifact number i of a model whose output is all i, pausing before the rename when asked to
SAVER = """
import sys
import danlu as dl
import danlu.export
path, value, size = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
w = dl.full((size,), value)
danlu.export.save(lambda x: x * 0 + w, (dl.zeros(size),), path)
"""


def save_in_child(path, value, size, **env):
    return subprocess.Popen([sys.executable, "-c", SAVER, str(path), str(value), str(size)],
                            env={**os.environ, "PYTHONPATH": str(REPO), **env})


@posix_only
def test_killed_save_leaves_previous_artifact_loadable(tmp_path):
    path = tmp_path / "model.dlx"
    proc = save_in_child(path, 1.0, 1000)
    assert proc.wait(timeout=300) == 0
    marker = tmp_path / "paused"
    proc = save_in_child(path, 2.0, 1000, **{files.PAUSE_ENV: str(marker)})
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():  # the new artifact is complete in its temporary file, not yet renamed
            assert proc.poll() is None, "the saver exited before reaching the test hook"
            assert time.monotonic() < deadline, "the saver never reached the test hook"
            time.sleep(0.02)
    finally:
        proc.kill()  # SIGKILL: no cleanup runs in the saver
        proc.wait()
    prog = export.load(path)
    np.testing.assert_array_equal(prog(dl.zeros(1000)).numpy(), np.full(1000, 1.0, np.float32))
    # the orphaned temporary file is never mistaken for the artifact
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    proc = save_in_child(path, 3.0, 1000)  # a later save replaces the artifact whole
    assert proc.wait(timeout=300) == 0
    np.testing.assert_array_equal(export.load(path)(dl.zeros(1000)).numpy(), np.full(1000, 3.0, np.float32))


def test_failed_trace_leaves_previous_artifact(tmp_path):
    path = tmp_path / "model.dlx"
    export.save(lambda x: x + 1, (dl.zeros(2),), path)
    before = path.read_bytes()
    with pytest.raises(ZeroDivisionError):
        export.save(lambda x: x / (1 // 0), (dl.zeros(2),), path)
    assert path.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name != "model.dlx"]
