import torch

# The tests use tiny batches: one thread is as fast, and robust to a busy machine.
torch.set_num_threads(1)
