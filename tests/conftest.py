import os

# Every test run checks each kernel's result against its op's infer rule (shape and dtype).
os.environ.setdefault("DANLU_CHECK", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    import danlu as dl

    dl.manual_seed(0)
    np.random.seed(0)
    yield
    dl.set_default_dtype(dl.float32)
