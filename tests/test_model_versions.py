"""`keras-dcgan serve --model-base-path`: version folders loaded, checked, served and retired as TF Serving does.

Real server processes (TensorFlow blocked) on 127.0.0.1 serve a base path built from the
session's real export: each new version is a copy of its folder with the manifest's version
rewritten, renamed into place whole, as `keras-dcgan export` writes one. Every wait and every
request loop here is bounded in time.
"""

import http.client
import json
import os
import shutil
import signal
import threading
import time
import urllib.parse
import urllib.request

import pytest

from keras_dcgan.latents import latents_from_seeds
from keras_dcgan.contract import MANIFEST_NAME
from keras_dcgan.serving.model_repository import BasePathWatcher, ModelRepository
from keras_dcgan.serving.rest_api import PendingPrediction, PredictionApi
from test_serving_support import process_holding, run_tf_free_cli, start_keras_dcgan_serve_models, worker_pids

POLL_SECONDS = 0.2
BODY = json.dumps({"instances": latents_from_seeds([0], 32).tolist()}).encode()


def add_version(base_path, export_dir, version, tamper=False, manifest=True):
    """Copy `export_dir` to `base_path/version`, its manifest's version rewritten, renamed into place in one step."""
    staging = base_path / f".partial-{version}"
    shutil.copytree(export_dir, staging)
    recorded = json.loads((staging / MANIFEST_NAME).read_text())
    if tamper:  # one byte changed: its SHA-256 no longer matches the manifest
        with open(staging / recorded["onnx"]["file"], "r+b") as model:
            model.seek(-1, os.SEEK_END)
            last = model.read(1)
            model.seek(-1, os.SEEK_END)
            model.write(bytes([last[0] ^ 0xFF]))
    (staging / MANIFEST_NAME).unlink()
    if manifest:
        write_manifest(staging, recorded, version)
    os.rename(staging, base_path / str(version))


def write_manifest(folder, recorded, version):
    temporary = folder / f".{MANIFEST_NAME}.tmp"
    temporary.write_text(json.dumps({**recorded, "version": version}))
    os.rename(temporary, folder / MANIFEST_NAME)


def write_config(path, policy, labels=()):
    text = 'model_config_list {\n  config {\n    name: "dcgan"\n    base_path: "/models/dcgan"\n'
    text += f"    model_version_policy {{ {policy} }}\n"
    text += "".join(f'    version_labels {{ key: "{label}" value: {version} }}\n' for label, version in labels)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text + "  }\n}\n")
    os.rename(temporary, path)


def request(connection, method, path, body=None):
    connection.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
    response = connection.getresponse()
    return response.status, json.loads(response.read())


def call(url, method, path, body=None):
    connection = http.client.HTTPConnection(urllib.parse.urlsplit(url).netloc, timeout=10)
    try:
        return request(connection, method, path, body)
    finally:
        connection.close()


def states(answer):
    """{version: (state, error_code, error_message)} of a status answer."""
    return {
        int(entry["version"]): (entry["state"], entry["status"]["error_code"], entry["status"]["error_message"])
        for entry in answer["model_version_status"]
    }


def wait_for(check, what, timeout=40):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.1)
    return result


@pytest.fixture
def base_path(tmp_path, exported_model):
    folder = tmp_path / "dcgan"
    folder.mkdir()
    add_version(folder, exported_model.version_dir, 1)
    return folder


def test_a_retiring_version_answers_the_predictions_it_holds_before_it_ends(base_path, exported_model):
    """In process, with the API's two halves: a prediction routed to version 1 is answered after version 1 retired."""
    repository = ModelRepository("dcgan")
    watcher = BasePathWatcher(repository, base_path)
    watcher.start_serving()
    api = PredictionApi(repository)
    on_first = api.begin("POST", "/v1/models/dcgan:predict", BODY)
    assert isinstance(on_first, PendingPrediction) and on_first.lease.version == 1
    add_version(base_path, exported_model.version_dir, 2)
    watcher.poll()
    assert states(api.respond("GET", "/v1/models/dcgan")[1]) == {2: ("AVAILABLE", "OK", ""), 1: ("UNLOADING", "OK", "")}
    assert api.respond("POST", "/v1/models/dcgan/versions/1:predict", BODY)[0] == 404  # no new request for it
    on_second = api.begin("POST", "/v1/models/dcgan:predict", BODY)
    assert on_second.lease.version == 2
    answers = api.complete([on_first, on_second])  # one batch of two versions: a model call for each
    assert [status for status, _ in answers] == [200, 200]
    assert len(answers[0][1]["predictions"]) == len(answers[1][1]["predictions"]) == 1
    assert states(api.respond("GET", "/v1/models/dcgan")[1])[1] == ("END", "OK", "")
    abandoned = api.begin("POST", "/v1/models/dcgan:predict", BODY)
    for version in (1, 2):  # no version left on disk: the last one retires too, as in TF Serving
        shutil.rmtree(base_path / str(version))
    watcher.poll()
    assert states(api.respond("GET", "/v1/models/dcgan")[1])[2][0] == "UNLOADING"
    api.abandon(abandoned)  # its client left: the version ends all the same
    assert states(api.respond("GET", "/v1/models/dcgan")[1])[2][0] == "END"
    assert api.respond("POST", "/v1/models/dcgan:predict", BODY)[0] == 404


@pytest.mark.slow
def test_a_new_version_serves_once_checked_and_a_failed_or_half_written_one_never_does(base_path, exported_model):
    server = start_keras_dcgan_serve_models(base_path, "--workers", 1, "--file-system-poll-wait-seconds", POLL_SECONDS, "--metrics")
    try:
        assert states(call(server.url, "GET", "/v1/models/dcgan")[1]) == {1: ("AVAILABLE", "OK", "")}
        add_version(base_path, exported_model.version_dir, 2)
        wait_for(lambda: states(call(server.url, "GET", "/v1/models/dcgan")[1]).get(1, ("",))[0] == "END", "version 1 retired")
        assert states(call(server.url, "GET", "/v1/models/dcgan")[1]) == {2: ("AVAILABLE", "OK", ""), 1: ("END", "OK", "")}
        assert call(server.url, "GET", "/v1/models/dcgan/metadata")[1]["model_spec"]["version"] == "2"
        status, answer = call(server.url, "POST", "/v1/models/dcgan/versions/1:predict", BODY)
        assert status == 404 and "Specific(dcgan, 1)" in answer["error"] and "available versions: 2" in answer["error"]
        assert call(server.url, "GET", "/v1/models/dcgan/versions/1")[1]["model_version_status"][0]["state"] == "END"

        add_version(base_path, exported_model.version_dir, 4, manifest=False)  # still being written: no manifest yet
        add_version(base_path, exported_model.version_dir, 3, tamper=True)
        failed = wait_for(lambda: states(call(server.url, "GET", "/v1/models/dcgan")[1]).get(3), "version 3 checked")
        assert failed[:2] == ("END", "INVALID_ARGUMENT") and "SHA-256" in failed[2], failed
        time.sleep(5 * POLL_SECONDS)
        listed = states(call(server.url, "GET", "/v1/models/dcgan")[1])
        assert 4 not in listed and listed[2][0] == "AVAILABLE", listed  # the half-written folder is no failure, v2 still serves
        assert call(server.url, "POST", "/v1/models/dcgan:predict", BODY)[0] == 200
        assert call(server.url, "GET", "/v1/models/dcgan/metadata")[1]["model_spec"]["version"] == "2"
        assert call(server.url, "GET", "/v1/models/dcgan/versions/3/metadata")[0] == 404

        write_manifest(base_path / "4", exported_model.manifest, 4)  # the folder is complete now
        wait_for(lambda: states(call(server.url, "GET", "/v1/models/dcgan")[1]).get(2, ("",))[0] == "END", "version 2 retired")
        assert call(server.url, "GET", "/v1/models/dcgan/metadata")[1]["model_spec"]["version"] == "4"
        with urllib.request.urlopen(f"{server.url}/monitoring/prometheus/metrics", timeout=10) as scrape:
            assert 'keras_dcgan_serve_model_version{model="dcgan"} 4.0' in scrape.read().decode()
        log = "".join(server.output)
        assert "has no manifest.json yet" in log and "version 3 failed to load" in log and "Traceback" not in log
        assert server.stop() == 0
    finally:
        server.stop()


@pytest.mark.slow
def test_labels_route_requests_and_a_bad_config_reload_keeps_the_config_in_force(base_path, exported_model, tmp_path):
    add_version(base_path, exported_model.version_dir, 2)
    config = tmp_path / "models.config"
    write_config(config, "all {}", [("stable", 1), ("canary", 2)])
    server = start_keras_dcgan_serve_models(
        base_path, "--workers", 1, "--file-system-poll-wait-seconds", POLL_SECONDS, "--model-config-file", config
    )
    try:
        assert "labels canary -> 2, stable -> 1" in "".join(server.output)
        for label, version in (("stable", "1"), ("canary", "2")):
            assert call(server.url, "GET", f"/v1/models/dcgan/labels/{label}/metadata")[1]["model_spec"]["version"] == version
            assert call(server.url, "POST", f"/v1/models/dcgan/labels/{label}:predict", BODY)[0] == 200
        status, answer = call(server.url, "POST", "/v1/models/dcgan/labels/beta:predict", BODY)
        assert status == 400 and answer["error"] == "Unrecognized servable version label: beta"

        config.write_text('model_config_list { config { name: "dcgan"\n  model_version_policy { newest {} } } }')
        server.process.send_signal(signal.SIGHUP)
        wait_for(lambda: f"{config}:2:" in "".join(server.output), "the bad config logged with its line")
        write_config(config, "all {}", [("stable", 7)])  # a label on a version that is not there
        server.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "names version 7 of dcgan, which is not available" in "".join(server.output), "the bad label logged")
        assert call(server.url, "GET", "/v1/models/dcgan/labels/stable/metadata")[1]["model_spec"]["version"] == "1"

        shutil.rmtree(base_path / "1")  # a version whose folder goes away retires
        wait_for(lambda: states(call(server.url, "GET", "/v1/models/dcgan")[1])[1][0] == "END", "version 1 retired")
        status, answer = call(server.url, "POST", "/v1/models/dcgan/labels/stable:predict", BODY)
        assert status == 404 and "Specific(dcgan, 1)" in answer["error"]
        assert call(server.url, "POST", "/v1/models/dcgan/labels/canary:predict", BODY)[0] == 200
        assert server.stop() == 0
    finally:
        server.stop()


@pytest.mark.slow
def test_a_bad_config_or_a_label_on_a_missing_version_stops_the_start_with_one_line(base_path, tmp_path):
    config = tmp_path / "models.config"
    write_config(config, "latest { num_versions: 2 }", [("stable", 5)])
    started = run_tf_free_cli("serve", "--model-base-path", base_path, "--model-config-file", config, "--port", "0")
    assert started.returncode == 2 and "version_labels 'stable' names version 5 of dcgan, which is not available (available: 1)" in started.stderr
    config.write_text('model_config_list {\n  config {\n    name: "dcgan"\n    version_labels { key: "stable" value: one }\n')
    started = run_tf_free_cli("serve", "--model-base-path", base_path, "--model-config-file", config, "--port", "0")
    assert started.returncode == 2 and f"{config}:4:" in started.stderr and "Traceback" not in started.stderr, started.stderr
    started = run_tf_free_cli("serve", "--model-base-path", base_path, "--onnx", base_path / "1" / "generator.onnx")
    assert started.returncode == 2 and "not allowed with argument" in started.stderr
    started = run_tf_free_cli("serve", "--model-base-path", tmp_path / "nowhere", "--port", "0")
    assert started.returncode == 2 and "is not a folder" in started.stderr


def connections_to_each_worker(server, workers, attempts=200):
    """{worker pid: a keep-alive connection that this worker accepted}, one per worker."""
    held = {}
    for _ in range(attempts):
        if len(held) == workers:
            break
        connection = http.client.HTTPConnection(urllib.parse.urlsplit(server.url).netloc, timeout=10)
        request(connection, "GET", "/v1/models/dcgan")  # accepted by now
        pid = process_holding(connection.sock, worker_pids(server))
        if pid in held:
            connection.close()
        else:
            held[pid] = connection
    assert len(held) == workers, f"found connections to {len(held)} of {workers} workers"
    return held


def every_worker(connections, check):
    """True once `check(connection)` holds on the connection to every worker."""
    return all(check(connection) for connection in connections.values())


@pytest.mark.slow
def test_a_rollout_under_load_fails_no_request_and_every_worker_converges(base_path, exported_model, tmp_path):
    config = tmp_path / "models.config"
    write_config(config, "latest { num_versions: 2 }", [("stable", 1)])
    server = start_keras_dcgan_serve_models(
        base_path, "--workers", 2, "--file-system-poll-wait-seconds", POLL_SECONDS, "--model-config-file", config
    )
    stop = threading.Event()
    answered, failures = [], []

    def client(path):
        connection = http.client.HTTPConnection(urllib.parse.urlsplit(server.url).netloc, timeout=10)
        count, deadline = 0, time.monotonic() + 120
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                status, answer = request(connection, "POST", path, BODY)
            except (OSError, http.client.HTTPException) as error:
                failures.append((path, repr(error)))
                connection.close()
                continue
            if status != 200:
                failures.append((path, status, answer))
            count += 1
        connection.close()
        answered.append(count)

    paths = ["/v1/models/dcgan/labels/stable:predict", "/v1/models/dcgan:predict"] * 2
    clients = [threading.Thread(target=client, args=(path,)) for path in paths]
    try:
        workers = connections_to_each_worker(server, 2)
        for thread in clients:
            thread.start()
        time.sleep(1.0)
        add_version(base_path, exported_model.version_dir, 2)
        wait_for(
            lambda: every_worker(workers, lambda c: states(request(c, "GET", "/v1/models/dcgan")[1]).get(2, ("",))[0] == "AVAILABLE"),
            "version 2 available in every worker",
        )
        write_config(config, "specific { versions: 2 }", [("stable", 2)])  # the label moves on, version 1 retires
        server.process.send_signal(signal.SIGHUP)

        def converged(connection):
            listed = states(request(connection, "GET", "/v1/models/dcgan")[1])
            stable = request(connection, "GET", "/v1/models/dcgan/labels/stable/metadata")[1]["model_spec"]["version"]
            return listed == {2: ("AVAILABLE", "OK", ""), 1: ("END", "OK", "")} and stable == "2"

        wait_for(lambda: every_worker(workers, converged), "every worker serving version 2 as stable, version 1 ended")
        time.sleep(1.0)  # the load goes on after the retirement
    finally:
        stop.set()
        for thread in clients:
            thread.join(30)
        for connection in locals().get("workers", {}).values():
            connection.close()
        server.stop()
    assert failures == [], failures[:5]
    assert len(answered) == len(paths) and all(count > 0 for count in answered), answered
    log = "".join(server.output)
    assert log.count("version 1 unloaded") == 2 and "Traceback" not in log, log[-3000:]
