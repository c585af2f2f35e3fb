"""Training Studio: a desktop app to watch AI image-model training jobs and build datasets.

The package is split so that only `ui` imports Qt: `contract` holds the wire models shared by
client and server, `client` the async HTTP client, `server` the embedded FastAPI server, `runner`
the job queue and subprocess supervision, `trainers` the trainers that run as subprocesses.
"""

__version__ = "0.1.0"
