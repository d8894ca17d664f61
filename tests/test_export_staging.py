"""Staging folders of exports killed outright: removed by the next export under the same base path, unless still in use.

Real processes are killed with SIGKILL here, so that nothing of theirs runs to clean up.
"""

import os
import signal
import subprocess
import sys

from keras_dcgan.export.version_folder import STAGING_PREFIX, staged_version_folder

# An export that stops halfway: its staging folder exists and holds a file when it prints "ready".
STOPPED_EXPORT = """
import pathlib, sys, time
from keras_dcgan.export.version_folder import staged_version_folder
with staged_version_folder(sys.argv[1], int(sys.argv[2])) as staging:
    (pathlib.Path(staging) / "saved_model.pb").write_bytes(b"half")
    print("ready", flush=True)
    time.sleep(60)
"""


def start_stopped_export(base_path, version):
    process = subprocess.Popen([sys.executable, "-c", STOPPED_EXPORT, str(base_path), str(version)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "ready\n"
    return process


def staging_folders(base_path):
    return sorted(entry.split("-")[1] for entry in os.listdir(base_path) if entry.startswith(STAGING_PREFIX))


def test_the_next_export_removes_staging_folders_of_killed_exports_and_keeps_running_ones(tmp_path):
    base_path = tmp_path / "dcgan"
    running = start_stopped_export(base_path, 5)
    try:
        killed = start_stopped_export(base_path, 3)
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
        assert staging_folders(base_path) == ["3", "5"]
        with staged_version_folder(base_path, 4) as staging:
            (tmp_path / "dcgan" / os.path.basename(staging) / "saved_model.pb").write_bytes(b"whole")
        assert staging_folders(base_path) == ["5"], "the killed export's folder must go, the running one's stay"
        assert (base_path / "4" / "saved_model.pb").read_bytes() == b"whole"
    finally:
        running.send_signal(signal.SIGKILL)
        running.wait(10)
    with staged_version_folder(base_path, 6):
        pass
    assert staging_folders(base_path) == [] and sorted(os.listdir(base_path)) == ["4", "6"]
