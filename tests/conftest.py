import pytest
import torch

# The tests use tiny batches: one thread is as fast, and robust to a busy machine.
torch.set_num_threads(1)



@pytest.fixture()
def dies_on_call():
    """Wrap a function so that its n-th call raises KeyboardInterrupt (a simulated kill)."""

    def wrap(fn, n):
        calls = {"n": 0}

        def dying(*a, **k):
            calls["n"] += 1
            if calls["n"] == n:
                raise KeyboardInterrupt
            return fn(*a, **k)

        return dying

    return wrap
