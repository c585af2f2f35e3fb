"""A labelled STAND-IN for a machine without NVIDIA's NVML bindings: importing `pynvml` fails, as it does
where nvidia-ml-py is not installed. Put ahead of the real bindings on a server subprocess's PYTHONPATH."""

raise ImportError("No module named 'pynvml' (stand-in: bindings absent)")
