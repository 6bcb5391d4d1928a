#!/bin/sh
# The training stages' launcher (train_aekl, train_ldm): $CXRLDM_LAUNCH, plain `python` when unset, e.g.
#   CXRLDM_LAUNCH="torchrun --standalone --nproc_per_node=8" dvc repro
# It is an environment variable, not a param, because the result does not depend on the process count
# (tests/models/test_distributed.py): a model trained on 8 GPUs stays up to date on the laptop that samples from it.
exec ${CXRLDM_LAUNCH:-python} "$@"
