"""GET /api/system: the machine the server runs on (host CPU and memory, data-dir disk, NVIDIA GPUs), and
with `--executor ray` the Ray cluster's nodes and free CPUs and GPUs (issue 18).

The figures come from `server/system_info.py`'s sampler, cached for about a second, so a client polling
with every jobs refresh costs the server one sample per second whatever the number of clients.
"""

from __future__ import annotations

import functools

from fastapi import APIRouter, Depends, Request

from training_studio.contract import SystemInfo
from training_studio.server.context import ServerContext, server_context
from training_studio.server.errors import error_responses
from training_studio.server.system_info import SystemSampler

router = APIRouter(tags=["system"])


def system_sampler(request: Request, ctx: ServerContext = Depends(server_context)) -> SystemSampler:
    sampler = getattr(request.app.state, "system_sampler", None)
    if sampler is None:
        gpu_jobs = getattr(ctx.executor, "gpu_jobs", None)
        cluster_reader = None
        address = getattr(ctx.config, "ray_address", None)
        if getattr(ctx.config, "executor", "local") == "ray" and address:
            # issue 18: the cluster's nodes and free resources from its dashboard (also with --no-runner)
            from training_studio.runner.ray_cluster import read_cluster

            cluster_reader = functools.partial(read_cluster, address)
        sampler = SystemSampler(ctx.config.data_dir, assigned_gpus=ctx.config.gpus, gpu_jobs=gpu_jobs,
                                cluster_reader=cluster_reader, cluster_address=address)
        request.app.state.system_sampler = sampler
    return sampler


@router.get("/api/system", response_model=SystemInfo, response_model_exclude_none=False,
            responses=error_responses())
async def system(sampler: SystemSampler = Depends(system_sampler)) -> SystemInfo:
    return await sampler.sample()
