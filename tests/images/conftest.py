"""The images as production runs them, with podman: both built from the repository's Dockerfiles
(tools/build-images.sh, on the base tools/base-image.sh makes), ml-1m ingested by the ingest
image into a podman volume, and the service image serving that volume on a loopback port.

Where podman cannot run, every container test is skipped with one reason; under CI=true it
fails instead (these machines can run podman: `make podman-tools` sets it up)."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from tests.service_helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
UID = "10001:10001"
STORE = "/var/lib/movierec"  # the images' data directory (QDRANT_PATH lives under it)
# What the summary at the end of the run reports: image sizes, build and ingest times.
REPORT: dict[str, str] = {}
CI = os.environ.get("CI", "").lower() == "true"
# What tools/install-podman.sh installs for podman on these hosts (runc, cgroupfs, the host's
# ulimits). Where running as root without that copy in place (a run once lost it between the
# install and these tests, and every container then failed to raise RLIMIT_NOFILE), podman
# reads the repository's copy instead (CONTAINERS_CONF): the tests need not trust that copy.
SETTINGS = ROOT / "tools" / "podman" / "containers.conf"
INSTALLED_SETTINGS = Path("/etc/containers/containers.conf.d/50-movierec-runc-cgroupfs.conf")


@functools.lru_cache(maxsize=1)
def podman_env() -> dict[str, str]:
    env = dict(os.environ)
    installed = INSTALLED_SETTINGS.is_file() and \
        INSTALLED_SETTINGS.read_bytes() == SETTINGS.read_bytes()
    if os.geteuid() == 0 and not installed and "CONTAINERS_CONF" not in env:
        env["CONTAINERS_CONF"] = str(SETTINGS)
    return env


def podman(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout,
                          env=podman_env())
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {done.returncode}:\n"
                             f"{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return done


def cannot_run(reason: str):
    if CI:
        pytest.fail(f"podman cannot run here, and CI=true: {reason}")
    pytest.skip(f"podman cannot run here: {reason}", allow_module_level=True)


@functools.lru_cache(maxsize=1)
def podman_problem() -> str | None:
    """Why podman cannot run containers on this machine, in one line; None when it can."""
    if shutil.which("podman") is None:
        return "podman is not installed (as root on Debian: make podman-tools)"
    done = subprocess.run(["podman", "info", "--format", "{{.Host.OCIRuntime.Name}}"],
                          capture_output=True, text=True, timeout=120, env=podman_env())
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
        return f"`podman info` failed: {lines[-1]}"
    return None


def size_of(image: str) -> int:
    return int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout)


def chart_app_version() -> str:
    return str(yaml.safe_load((ROOT / "charts" / "movierec" / "Chart.yaml").read_text())["appVersion"])


@dataclass
class Images:
    """The images by ID (other checkouts on this machine may build the same tags meanwhile)."""
    base: str
    ingest: str
    service: str
    sizes: dict[str, int] = field(default_factory=dict)


@pytest.fixture(scope="session")
def images(tmp_path_factory) -> Images:
    """Both images, built by the same script `make images` and `make kind-deploy` use."""
    problem = podman_problem()
    if problem:
        cannot_run(problem)
    started = time.monotonic()
    base = os.environ.get("BASE_IMAGE", "")
    if not base:
        made = subprocess.run(["bash", str(ROOT / "tools" / "base-image.sh")],
                              capture_output=True, text=True, timeout=900, env=podman_env())
        if made.returncode != 0:
            cannot_run(f"no base image: {(made.stderr.strip().splitlines() or ['?'])[-1]}")
        base = made.stdout.strip().splitlines()[-1]
    base_seconds = time.monotonic() - started
    ids = tmp_path_factory.mktemp("image-ids")
    env = {**podman_env(), "CONTAINER_ENGINE": "podman", "IMAGE_TAG": chart_app_version(),
           "BASE_IMAGE": base, "IMAGE_ID_DIR": str(ids)}
    built = subprocess.run(["bash", str(ROOT / "tools" / "build-images.sh")], env=env,
                           capture_output=True, text=True, timeout=1200)
    assert built.returncode == 0, f"tools/build-images.sh failed:\n{built.stderr[-5000:]}"
    tags = dict(zip(("ingest", "recommender"), built.stdout.split()))
    image_id = {name: (ids / name).read_text().strip() for name in tags}
    result = Images(base, image_id["ingest"], image_id["recommender"])
    names = {base: base, **{image_id[name]: tag for name, tag in tags.items()}}
    result.sizes = {image: size_of(image) for image in names}
    REPORT["build"] = (f"base {base} in {base_seconds:.0f} s, both images in "
                       f"{time.monotonic() - started - base_seconds:.0f} s")
    REPORT["sizes"] = ", ".join(
        f"{names[image]} {size / 1e6:.0f} MB" + ("" if image == base else
                                                  f" (+{(size - result.sizes[base]) / 1e6:.0f} MB)")
        for image, size in result.sizes.items())
    return result


@dataclass
class Store:
    volume: str
    path: Path  # the volume's directory on this host
    ingest: subprocess.CompletedProcess


@pytest.fixture(scope="session")
def store(images, ml1m_dir) -> Store:
    """ml-1m ingested by the ingest image as the cluster runs it: uid 10001, read-only root
    filesystem with a tmpfs on /tmp, the data mounted read-only, the store on a volume."""
    volume = f"movierec-test-{uuid.uuid4().hex[:8]}"
    podman("volume", "create", volume)
    try:
        started = time.monotonic()
        ingest = podman(
            "run", "--rm", "--user", UID, "--read-only", "--read-only-tmpfs=false",
            "--tmpfs", "/tmp", "--cap-drop=ALL", "--security-opt", "no-new-privileges",
            "-v", f"{Path(ml1m_dir).resolve()}:/data/ml-1m:ro", "-e", "MOVIELENS_DIR=/data/ml-1m",
            "--no-healthcheck", "-v", f"{volume}:{STORE}",
            images.ingest, "ingest", "--dataset", "ml-1m",  # the chart's arguments
            timeout=1200, check=False)
        REPORT["ingest"] = (f"ml-1m ingested by the ingest image in "
                            f"{time.monotonic() - started:.0f} s: {ingest.stdout.strip()}")
        path = Path(podman("volume", "inspect", "--format", "{{.Mountpoint}}", volume).stdout.strip())
        yield Store(volume, path, ingest)
    finally:
        podman("volume", "rm", "--force", volume, check=False)


@dataclass
class Service:
    name: str
    url: str
    client: httpx.Client

    def logs(self) -> str:
        done = podman("logs", self.name, check=False)
        return done.stdout + done.stderr


def start_service(images: Images, store: Store) -> Service:
    """The service image on the store's volume, as the Deployment runs it: uid 10001, read-only
    root filesystem with a tmpfs on /tmp, every capability dropped; waits for /readyz."""
    assert store.ingest.returncode == 0, "the ingest image failed; nothing to serve"
    name = f"movierec-test-serve-{uuid.uuid4().hex[:8]}"
    port = free_port()
    podman("run", "--detach", "--name", name, "--user", UID, "--read-only",
           "--read-only-tmpfs=false", "--tmpfs", "/tmp", "--cap-drop=ALL",
           "--security-opt", "no-new-privileges", "--no-healthcheck",
           "-v", f"{store.volume}:{STORE}", "-p", f"127.0.0.1:{port}:8000",
           images.service, "serve")  # the Deployment's arguments
    service = Service(name, f"http://127.0.0.1:{port}", httpx.Client(
        base_url=f"http://127.0.0.1:{port}", timeout=30))
    deadline = time.monotonic() + 120
    while True:
        state = podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
        if state != "running":
            raise AssertionError(f"the service container is {state}:\n{service.logs()}")
        try:
            if service.client.get("/readyz", timeout=2).status_code == 200:
                return service
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"/readyz not 200 within 120 s:\n{service.logs()}")
        time.sleep(0.25)


@pytest.fixture(scope="module")
def service(images, store):
    running = start_service(images, store)
    yield running
    running.client.close()
    podman("rm", "--force", "--time", "0", running.name, check=False)


def pytest_terminal_summary(terminalreporter):
    for key in ("build", "sizes", "ingest"):
        if key in REPORT:
            terminalreporter.write_line(f"images: {REPORT[key]}")
