"""The HTTP half of packaging/smoke_test.sh: talks to the server a frozen bundle started, as a client would.

Runs with the checkout's venv Python (httpx, Pillow), never with the bundle, so that what is tested
is the bundle's server and trainer, and the test tooling is not part of what ships. Each subcommand
prints one line saying what it checked and exits non-zero with a specific message when it fails:

    smoke_drive.py wait-server DATA_DIR [--timeout S] [--gui-pid PID]
    smoke_drive.py run-job DATA_DIR [--steps N] [--timeout S] [--name NAME]
    smoke_drive.py start-running-job DATA_DIR [--name NAME] [--timeout S]   (prints the job id)
    smoke_drive.py cancel-job DATA_DIR JOB_ID [--timeout S]
    smoke_drive.py check-png PATH [--min-width W] [--min-height H]
    smoke_drive.py server-pid DATA_DIR
    smoke_drive.py server-url DATA_DIR
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import time
from pathlib import Path

import httpx
from PIL import Image, ImageDraw

TERMINAL_STATUSES = {"completed", "failed", "cancelled"}


class SmokeFailure(Exception):
    """A check failed; the message is shown to whoever reads the CI log."""


def read_server_json(data_dir: Path) -> dict | None:
    try:
        data = json.loads((data_dir / "server.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not {"url", "token", "pid"} <= data.keys():
        return None
    return data


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def client_for(data_dir: Path) -> httpx.Client:
    info = read_server_json(data_dir)
    if info is None:
        raise SmokeFailure(f"no usable server.json in {data_dir}")
    return httpx.Client(base_url=str(info["url"]).rstrip("/"), timeout=30,
                        headers={"Authorization": f"Bearer {info['token']}"})


def expect(response: httpx.Response, *statuses: int) -> dict | list:
    if response.status_code not in statuses:
        raise SmokeFailure(f"{response.request.method} {response.request.url.path} answered "
                           f"{response.status_code}: {response.text[:500]}")
    return response.json()


def wait_server(data_dir: Path, timeout: float, gui_pid: int | None) -> None:
    """Wait for the server the GUI started: server.json written, its pid alive, /api/health ok."""
    deadline = time.monotonic() + timeout
    last_problem = "server.json not written yet"
    while time.monotonic() < deadline:
        if gui_pid is not None and not pid_alive(gui_pid):
            raise SmokeFailure(f"the GUI (pid {gui_pid}) exited before its server was ready ({last_problem})")
        info = read_server_json(data_dir)
        if info is not None:
            if not pid_alive(int(info["pid"])):
                last_problem = f"server.json names pid {info['pid']}, which is not running"
            else:
                try:
                    health = httpx.get(str(info["url"]).rstrip("/") + "/api/health", timeout=2)
                    if health.status_code == 200 and health.json().get("status") == "ok":
                        print(f"server ready: {info['url']} pid {info['pid']} version {health.json().get('version')}")
                        return
                    last_problem = f"/api/health answered {health.status_code}"
                except (httpx.HTTPError, ValueError) as exc:
                    last_problem = f"/api/health failed: {exc!r}"
        time.sleep(0.2)
    raise SmokeFailure(f"the bundle's server was not ready within {timeout:.0f} s: {last_problem}")


def make_training_png(index: int) -> bytes:
    """A small, distinct image: a coloured disc on a gradient, different for every index."""
    image = Image.new("RGB", (48, 48))
    draw = ImageDraw.Draw(image)
    for y in range(48):
        draw.line([(0, y), (47, y)], fill=(y * 5 % 256, (index * 37) % 256, 255 - y * 5 % 256))
    r = 8 + index % 12
    draw.ellipse([24 - r, 24 - r, 24 + r, 24 + r], fill=((index * 91) % 256, 200, (index * 53) % 256))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def run_job(data_dir: Path, steps: int, timeout: float, name: str) -> None:
    """Create and commit a small image dataset, train the built-in model on it, wait for `completed`."""
    with client_for(data_dir) as http:
        models = expect(http.get("/api/training/base-models"), 200)
        if not any(model.get("id") == "builtin-linear-vae" for model in models):
            raise SmokeFailure(f"builtin-linear-vae missing from /api/training/base-models: {models}")

        dataset = expect(http.post("/api/datasets", json={"name": f"{name} images", "type": "image"}), 201)
        for index in range(8):
            body = make_training_png(index)
            digest = hashlib.sha256(body).hexdigest()
            expect(http.put(f"/api/datasets/{dataset['id']}/files/{digest}", params={"filename": f"img-{index}.png"},
                            content=body, headers={"Content-Type": "application/octet-stream"}), 201)
        dataset = expect(http.post(f"/api/datasets/{dataset['id']}/commit"), 200, 201)
        if dataset.get("status") != "active" or dataset.get("image_count") != 8:
            raise SmokeFailure(f"committed dataset is not active with 8 images: {dataset}")

        job = expect(http.post("/api/training/jobs", json={
            "name": name, "dataset_id": dataset["id"], "base_model": "builtin-linear-vae",
            "total_steps": steps, "params": {"batch_size": 4},
        }), 201)
        deadline = time.monotonic() + timeout
        while job.get("status") not in TERMINAL_STATUSES:
            if time.monotonic() > deadline:
                raise SmokeFailure(f"job {job['id']} still {job.get('status')} after {timeout:.0f} s "
                                   f"(step {job.get('currentStep')}/{job.get('totalSteps')})")
            time.sleep(0.3)
            job = expect(http.get("/api/training/status", params={"job_id": job["id"]}), 200)
        if job["status"] != "completed":
            logs = http.get(f"/api/training/jobs/{job['id']}/logs").json().get("text", "")
            raise SmokeFailure(f"job {job['id']} ended {job['status']}: {job.get('error')}\n"
                               f"--- trainer log (tail) ---\n{logs[-3000:]}")
        if job.get("progress") != 100 or job.get("currentStep") != steps:
            raise SmokeFailure(f"completed job reports progress {job.get('progress')} at step "
                               f"{job.get('currentStep')} of {steps}")
        metrics = expect(http.get(f"/api/training/jobs/{job['id']}/metrics"), 200)
        if not metrics:
            raise SmokeFailure(f"completed job {job['id']} recorded no metrics")
        print(f"job {job['id']} ({name!r}) completed: {steps} steps, final loss {job.get('currentLoss')}, "
              f"{len(metrics)} metric points, trained by the bundle's own trainer")


def start_running_job(data_dir: Path, name: str, timeout: float) -> None:
    """Start a job long enough to still be running while a GUI starts and shows it; print its id."""
    with client_for(data_dir) as http:
        datasets = expect(http.get("/api/datasets"), 200)
        active = [d for d in datasets if d.get("status") == "active"]
        if not active:
            raise SmokeFailure("no active dataset to train on (run-job first)")
        job = expect(http.post("/api/training/jobs", json={
            "name": name, "dataset_id": active[0]["id"], "base_model": "builtin-linear-vae",
            "total_steps": 10_000_000, "params": {"batch_size": 4},
        }), 201)
        deadline = time.monotonic() + timeout
        while job.get("status") != "running" or job.get("currentStep") is None:
            if job.get("status") in TERMINAL_STATUSES:
                raise SmokeFailure(f"job {job['id']} ended {job['status']} before running: {job.get('error')}")
            if time.monotonic() > deadline:
                raise SmokeFailure(f"job {job['id']} still {job.get('status')} after {timeout:.0f} s")
            time.sleep(0.2)
            job = expect(http.get("/api/training/status", params={"job_id": job["id"]}), 200)
        print(job["id"])


def cancel_job(data_dir: Path, job_id: str, timeout: float) -> None:
    """Cancel a running job and wait until the server reports its trainer gone (`cancelled`)."""
    with client_for(data_dir) as http:
        answer = expect(http.post(f"/api/training/jobs/{job_id}/cancel"), 200)
        if answer.get("success") is not True:
            raise SmokeFailure(f"cancel of job {job_id} answered {answer}")
        deadline = time.monotonic() + timeout
        job = expect(http.get("/api/training/status", params={"job_id": job_id}), 200)
        while job.get("status") != "cancelled":
            if job.get("status") in TERMINAL_STATUSES:
                raise SmokeFailure(f"cancelled job {job_id} ended {job['status']} instead: {job.get('error')}")
            if time.monotonic() > deadline:
                raise SmokeFailure(f"job {job_id} still {job.get('status')} {timeout:.0f} s after cancel")
            time.sleep(0.2)
            job = expect(http.get("/api/training/status", params={"job_id": job_id}), 200)
        print(f"job {job_id} cancelled at step {job.get('currentStep')}: its trainer stopped")


def check_png(path: Path, min_width: int, min_height: int) -> None:
    """The screenshot is a real picture of a window, not an empty or single-colour canvas."""
    if not path.is_file():
        raise SmokeFailure(f"no screenshot at {path}")
    try:
        with Image.open(path) as image:
            image.load()
            if image.format != "PNG":
                raise SmokeFailure(f"{path} is a {image.format}, not a PNG")
            width, height = image.size
            colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    except OSError as exc:
        raise SmokeFailure(f"{path} is not a readable image: {exc}") from exc
    if width < min_width or height < min_height:
        raise SmokeFailure(f"screenshot is only {width}x{height} (expected at least {min_width}x{min_height})")
    distinct = len(colours) if colours is not None else 1 << 20
    # Text, icons and a table give hundreds of colours; a blank or failed render gives one or two.
    if distinct < 16:
        raise SmokeFailure(f"screenshot {width}x{height} has only {distinct} colours: the window looks blank")
    print(f"screenshot ok: {path} {width}x{height}, {distinct} colours, {path.stat().st_size} bytes")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="HTTP checks for the bundle smoke test.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("wait-server")
    p.add_argument("data_dir", type=Path)
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--gui-pid", type=int)
    p = sub.add_parser("run-job")
    p.add_argument("data_dir", type=Path)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--timeout", type=float, default=180)
    p.add_argument("--name", default="bundle smoke job")
    p = sub.add_parser("start-running-job")
    p.add_argument("data_dir", type=Path)
    p.add_argument("--name", default="bundle smoke running job")
    p.add_argument("--timeout", type=float, default=60)
    p = sub.add_parser("cancel-job")
    p.add_argument("data_dir", type=Path)
    p.add_argument("job_id")
    p.add_argument("--timeout", type=float, default=60)
    p = sub.add_parser("check-png")
    p.add_argument("path", type=Path)
    p.add_argument("--min-width", type=int, default=320)
    p.add_argument("--min-height", type=int, default=200)
    p = sub.add_parser("server-pid")
    p.add_argument("data_dir", type=Path)
    p = sub.add_parser("server-url")
    p.add_argument("data_dir", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "wait-server":
            wait_server(args.data_dir, args.timeout, args.gui_pid)
        elif args.command == "run-job":
            run_job(args.data_dir, args.steps, args.timeout, args.name)
        elif args.command == "start-running-job":
            start_running_job(args.data_dir, args.name, args.timeout)
        elif args.command == "cancel-job":
            cancel_job(args.data_dir, args.job_id, args.timeout)
        elif args.command == "check-png":
            check_png(args.path, args.min_width, args.min_height)
        elif args.command == "server-pid":
            info = read_server_json(args.data_dir)
            if info is None:
                return 1
            print(int(info["pid"]))
        elif args.command == "server-url":
            info = read_server_json(args.data_dir)
            if info is None:
                return 1
            print(str(info["url"]).rstrip("/"))
    except SmokeFailure as exc:
        print(f"smoke: FAILED: {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"smoke: FAILED: HTTP error talking to the bundle's server: {exc!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
