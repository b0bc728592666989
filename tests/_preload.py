"""What the fork server of :mod:`tests.forked` imports once, before it forks any process: what
every ``ssc-nas`` process imports first (ssc_nas with torch, Optuna, SQLAlchemy, rich, click;
scikit-learn for the data splits), and ``torch._dynamo``, which torch imports on the first
optimizer a process makes."""

import sklearn.datasets  # noqa: F401
import sklearn.model_selection  # noqa: F401
import torch

import ssc_nas.cli  # noqa: F401  (torch-free: each command imports what it runs, so these too)
import ssc_nas.compare.config  # noqa: F401
import ssc_nas.progress  # noqa: F401
import ssc_nas.search  # noqa: F401
import ssc_nas.search.run  # noqa: F401  (ssc_nas.search imports the loop when first used)
import ssc_nas.search.workers  # noqa: F401
import ssc_nas.train  # noqa: F401

torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)  # imports torch._dynamo
