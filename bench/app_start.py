"""How long `python app.py` takes to serve its page: process start to the first HTTP 200.

    .venv/bin/python bench/app_start.py [--runs 3]

Each run starts a fresh process (a private $VOICEFAKE_HOME, a free port) and polls / every 50 ms.
Models load on first use, so this is Python, Gradio and voicefake's imports plus building the
page. Prints every run, the median and the machine's load, since other jobs inflate the figure.
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_seconds(timeout: float = 120.0) -> float:
    """Seconds from spawning `python app.py` to its page answering 200."""
    port = free_port()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "VOICEFAKE_HOME": home}
        started = time.perf_counter()
        server = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port)], cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while time.perf_counter() - started < timeout:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
                        if response.status == 200:
                            return time.perf_counter() - started
                except OSError:
                    pass
                if server.poll() is not None:
                    raise RuntimeError(f"app.py exited with status {server.returncode} before serving")
                time.sleep(0.05)
            raise RuntimeError(f"app.py did not serve within {timeout:.0f} s")
        finally:
            server.terminate()
            server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    times = []
    for run in range(args.runs):
        times.append(start_seconds())
        print(f"run {run + 1}: {times[-1]:.2f} s", flush=True)
    print(f"app start (process start to HTTP 200): median {statistics.median(times):.2f} s, "
          f"min {min(times):.2f} s, max {max(times):.2f} s over {len(times)} runs; "
          f"{os.cpu_count()} CPU cores, load average {load:.1f} before, {os.getloadavg()[0]:.1f} after")


if __name__ == "__main__":
    main()
