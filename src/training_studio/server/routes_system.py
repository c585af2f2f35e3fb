"""GET /api/system: the machine the server runs on (host CPU and memory, data-dir disk, NVIDIA GPUs).

The figures come from `server/system_info.py`'s sampler, cached for about a second, so a client polling
with every jobs refresh costs the server one sample per second whatever the number of clients.
"""

from __future__ import annotations

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
        sampler = SystemSampler(ctx.config.data_dir, assigned_gpus=ctx.config.gpus, gpu_jobs=gpu_jobs)
        request.app.state.system_sampler = sampler
    return sampler


@router.get("/api/system", response_model=SystemInfo, response_model_exclude_none=False,
            responses=error_responses())
async def system(sampler: SystemSampler = Depends(system_sampler)) -> SystemInfo:
    return await sampler.sample()
