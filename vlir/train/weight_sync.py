"""Weight sync for R-GRPO with a served rollout engine (``rollout.engine: served``): after each
optimizer step the server(s) get the new policy, so the next rollouts are on-policy.

Two paths, against vLLM 0.32's endpoints (:mod:`vlir.serving.weights`; the server runs with
``VLLM_SERVER_DEV_MODE=1``, ``vlir vllm serve --dev-mode``):

* :class:`FolderSync` (any device; what runs and is tested here, on CPU): rank 0 writes the policy
  in ``save_pretrained`` layout to a folder and every server reloads it in place between a pause
  and a resume (``/collective_rpc reload_weights``), its weight version set to the step.
* :class:`NcclSync` (GPUs): the trainer joins the server's NCCL group once
  (``/init_weight_transfer_engine`` with ``packed: false``; the trainer is rank 0 of a
  ``StatelessProcessGroup`` rendezvous, the server's workers ranks 1..N) and each sync broadcasts
  every parameter while the server receives it (``/start_weight_update``, ``/update_weights`` with
  names, dtypes and shapes, ``/finish_weight_update`` with the version). It needs vLLM importable
  in the trainer's environment (for ``PyNcclCommunicator``, as TRL's ``use_vllm`` server mode does)
  and CUDA. **Written against vLLM 0.32's source; not run: no GPU was lent to this work.**

Either way the trajectories carry the ``policy_version`` they were sampled with; the trainer counts
those older than its current version (``rollout/stale_rate``).
"""

from __future__ import annotations

import logging
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

log = logging.getLogger(__name__)


class FolderSync:
    """Reload-from-folder: ``folder`` holds the latest policy weights for ``urls`` to load."""

    def __init__(self, urls: Sequence[str], folder: str | Path):
        self.urls = list(urls)
        self.folder = Path(folder)

    def push(self, engine: Any, version: int, *, zero_stage: int = 0, rank: int = 0) -> None:
        """Every rank calls it (ZeRO-3 gathers the weights collectively); rank 0 writes and loads."""
        import torch

        from vlir.serving import weights
        from vlir.train import common

        state_dict = engine._zero3_consolidated_16bit_state_dict() if zero_stage == 3 else None
        if rank == 0:
            module = engine.module
            if state_dict is not None:
                common.standard_key_layout(module)
            tmp = self.folder.with_name(self.folder.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            module.save_pretrained(tmp, state_dict=state_dict)
            shutil.rmtree(self.folder, ignore_errors=True)
            tmp.rename(self.folder)
            for url in self.urls:
                weights.load_weights(url, self.folder, version=str(version))
        if torch.distributed.is_initialized():
            torch.distributed.barrier()


class NcclSync:
    """NCCL broadcast from trainer rank 0 into every server's workers (GPU; see the module doc).

    ``workers`` is the number of vLLM workers per server (tensor x pipeline parallel size); each
    server gets its own group on ``master_port + i``."""

    def __init__(self, urls: Sequence[str], master_address: str, master_port: int, workers: int = 1):
        self.urls = list(urls)
        self.address, self.port, self.workers = master_address, master_port, workers
        self.groups: list[Any] = []

    def connect(self, device: Any) -> None:
        """Join each server's weight-transfer group (rank 0 of 1 + workers)."""
        from vllm.distributed.device_communicators.pynccl import PyNcclCommunicator
        from vllm.distributed.utils import StatelessProcessGroup

        from vlir.serving.weights import _post, _root

        for i, url in enumerate(self.urls):
            info = {"master_address": self.address, "master_port": self.port + i, "rank_offset": 1,
                    "world_size": 1 + self.workers, "packed": False}
            with ThreadPoolExecutor(1) as pool:  # both sides rendezvous inside the same call
                pending = pool.submit(_post, _root(url), "/init_weight_transfer_engine", {"init_info": info})
                group = StatelessProcessGroup.create(host=self.address, port=self.port + i, rank=0,
                                                     world_size=1 + self.workers)
                self.groups.append(PyNcclCommunicator(group, device=device))
                pending.result()

    def push(self, engine: Any, version: int, *, zero_stage: int = 0, rank: int = 0) -> None:
        import torch

        from vlir.serving.weights import _post, _root

        params = list(engine.module.named_parameters())
        if zero_stage == 3:  # gather each shard before it is sent
            from deepspeed.runtime.zero import GatheredParameters
            context = GatheredParameters([p for _, p in params])
        else:
            import contextlib
            context = contextlib.nullcontext()
        with context:
            if rank == 0:
                meta = {"names": [n for n, _ in params], "dtype_names": [str(p.dtype).split(".")[-1] for _, p in params],
                        "shapes": [list(p.shape) for _, p in params]}
                for url, group in zip(self.urls, self.groups):
                    root = _root(url)
                    _post(root, "/pause?mode=wait")
                    try:
                        _post(root, "/start_weight_update")
                        with ThreadPoolExecutor(1) as pool:
                            pending = pool.submit(_post, root, "/update_weights", {"update_info": meta})
                            for _, p in params:
                                group.broadcast(p.data, src=0, stream=torch.cuda.current_stream())
                            torch.cuda.synchronize()
                            pending.result()
                        _post(root, "/finish_weight_update", {"weight_version": str(version)})
                        _post(root, "/reset_prefix_cache")
                    finally:
                        _post(root, "/resume")
        if torch.distributed.is_initialized():
            torch.distributed.barrier()
