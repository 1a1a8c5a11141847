"""`dagster dev` as a user runs it, for end-to-end tests: own process group, stopped by its PID."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.e2e_project import BIN, ENV


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DagsterDev:
    def __init__(self, project: Path, log: Path):
        self.project, self.port = project, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("w")
        # A new session: SIGTERM to its process group stops the webserver, the daemon and the code server.
        self.process = subprocess.Popen(
            [str(BIN / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(self.port)], cwd=project,
            env={**ENV, "DAGSTER_HOME": str(project / ".dagster")}, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
        request = urllib.request.Request(f"{self.url}/graphql", data=json.dumps(
            {"query": query, "variables": variables or {}}).encode(), headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = json.loads(response.read())
        if body.get("errors"):
            raise AssertionError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"dagster dev exited with {self.process.returncode}")
            try:
                data = self.graphql("{ workspaceOrError { ... on Workspace { locationEntries { name "
                                    "locationOrLoadError { __typename } } } } }", timeout=5)
                entries = data["workspaceOrError"]["locationEntries"]
                if entries and all(e["locationOrLoadError"] and e["locationOrLoadError"]["__typename"] ==
                                   "RepositoryLocation" for e in entries):
                    return
            except OSError:
                pass
            time.sleep(1)
        raise AssertionError(f"dagster dev not ready at {self.url} after {timeout} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()


def chromium(url: str, out_dir: Path) -> tuple[str, Path]:
    """The rendered DOM of `url` and a screenshot, from headless Chromium (Debian's package)."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
             f"--user-data-dir={out_dir / 'chromium-profile'}", "--window-size=1400,900",
             "--virtual-time-budget=20000"]
    out_dir.mkdir(parents=True, exist_ok=True)
    screenshot = out_dir / "asset-graph.png"
    subprocess.run(["chromium", *flags, f"--screenshot={screenshot}", url], capture_output=True, timeout=120,
                   check=False)
    dom = subprocess.run(["chromium", *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    return dom, screenshot
