"""A labelled STAND-IN for NVIDIA's `pynvml` (nvidia-ml-py), for tests only: it reports two fixed GPUs.

The test machines have no NVIDIA GPU, so the only way to exercise the server's GPU path is to put this
module ahead of the real bindings on the server subprocess's PYTHONPATH. It implements just the calls
`server/system_info.py` makes, with the real names and shapes (bytes names as older drivers return them).
"""

from types import SimpleNamespace

NVML_TEMPERATURE_GPU = 0


class NVMLError(Exception):
    pass


_GPUS = [
    {"name": b"Stand-in GPU A (tests)", "uuid": "GPU-00000000-0000-0000-0000-00000000000a", "util": 37,
     "used": 3 * 2**30, "total": 24 * 2**30, "temp": 61},
    {"name": "Stand-in GPU B (tests)", "uuid": "GPU-00000000-0000-0000-0000-00000000000b", "util": 0,
     "used": 512 * 2**20, "total": 16 * 2**30, "temp": 34},
]
_initialised = False


def nvmlInit():
    global _initialised
    _initialised = True


def _check():
    if not _initialised:
        raise NVMLError("Uninitialized")


def nvmlDeviceGetCount():
    _check()
    return len(_GPUS)


def nvmlDeviceGetHandleByIndex(index):
    _check()
    return _GPUS[index]


def nvmlDeviceGetName(handle):
    return handle["name"]


def nvmlDeviceGetUUID(handle):
    return handle["uuid"]


def nvmlDeviceGetUtilizationRates(handle):
    return SimpleNamespace(gpu=handle["util"], memory=0)


def nvmlDeviceGetMemoryInfo(handle):
    return SimpleNamespace(used=handle["used"], total=handle["total"], free=handle["total"] - handle["used"])


def nvmlDeviceGetTemperature(handle, sensor):
    if handle["uuid"].endswith("b"):
        raise NVMLError("Not Supported")  # some boards have no sensor: the field is null, not an error
    return handle["temp"]
