"""Run by tests/test_train_ddp.py under torchrun: trains the config given as JSON."""

import json
import sys

from ase_mpnn.training.train import TrainConfig, train

if __name__ == "__main__":
    train(TrainConfig.from_dict(json.loads(sys.argv[1])), progress=False)
