"""The Kubernetes and KServe manifests under deploy/, validated against the schemas they are written to.

No cluster runs here, so nothing is applied. Instead:
- every Kubernetes object is checked by `kubernetes-validate` (from the package index, which ships
  the Kubernetes JSON schemas), in strict mode: an unknown or misspelt field fails too;
- the KServe InferenceServices are checked against a schema built from KServe's own Python SDK
  (`kserve` on the package index): its models, generated from the InferenceService CRD's OpenAPI,
  give every field's JSON name, type and whether it is required; the Kubernetes types inside
  (containers, probes, resources) resolve to kubernetes-validate's definitions. The CRD's YAML
  itself ships in no package. The SDK is read from its wheel, not installed: it pins protobuf
  below the version tensorflow-serving-api needs;
- the `keras-dcgan serve` arguments parse with the command's own parser, the probes name its
  health routes, and each grace period covers the shutdown delay and drain timeout.
Each check is shown to fail on a broken copy of a manifest.
"""

import ast
import copy
import json
import os
import pathlib
import re
import subprocess
import sys
import zipfile

import jsonschema
import kubernetes_validate
import pytest
import referencing
import yaml

from helpers import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
KUBERNETES_VERSIONS = ["1.30", kubernetes_validate.latest_version()]  # the oldest we claim, and the newest schemas shipped
KSERVE_SDK_VERSION = "0.21.0"  # the newest tested; its models are generated from the CRD of the same KServe release
GRACE_MARGIN_SECONDS = 5


def documents(folder):
    return [(path.name, doc) for path in sorted((DEPLOY / folder).glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]


KUBERNETES_OBJECTS = documents("kubernetes")
INFERENCE_SERVICES = documents("kserve")


def object_id(named):
    name, doc = named
    return f"{name}:{doc['kind']}"


# -- Kubernetes objects ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("named", KUBERNETES_OBJECTS, ids=map(object_id, KUBERNETES_OBJECTS))
def test_kubernetes_objects_match_the_kubernetes_schemas(named, version):
    kubernetes_validate.validate(named[1], version, strict=True)


def kubernetes_object(kind):
    return copy.deepcopy(next(doc for _, doc in KUBERNETES_OBJECTS if doc["kind"] == kind and "serve" in doc["metadata"]["name"] and "keras" in doc["metadata"]["name"]))


def misspelt_probe(deployment):
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")


def replicas_as_text(deployment):
    deployment["spec"]["replicas"] = "two"


def no_selector(deployment):
    del deployment["spec"]["selector"]


@pytest.mark.parametrize("breakage", [misspelt_probe, replicas_as_text, no_selector])
def test_a_broken_deployment_fails_the_kubernetes_schema(breakage):
    deployment = kubernetes_object("Deployment")
    breakage(deployment)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


# -- KServe InferenceServices --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kserve_models():
    """class name -> (openapi_types, attribute_map, required attributes) of every model in KServe's SDK wheel."""
    # Kept between runs (a pip download takes seconds to a minute on a busy machine), like pip's own cache.
    folder = pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache")) / "keras-dcgan" / "kserve-sdk"
    download = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--dest", folder, f"kserve=={KSERVE_SDK_VERSION}"],
        capture_output=True, text=True, timeout=300,
    ) if not list(folder.glob(f"kserve-{KSERVE_SDK_VERSION}-*.whl")) else None
    wheels = list(folder.glob(f"kserve-{KSERVE_SDK_VERSION}-*.whl"))
    if not wheels:
        pytest.skip(f"cannot download kserve=={KSERVE_SDK_VERSION}, whose models describe the InferenceService, from the package index: {download.stderr[-500:]}")
    models = {}
    with zipfile.ZipFile(wheels[0]) as wheel:
        for name in wheel.namelist():
            if re.fullmatch(r"kserve/models/v1\w+\.py", name):
                models.update(read_models(wheel.read(name).decode()))
    return models


def read_models(source):
    """The OpenAPI Generator model classes of one module: name -> (openapi_types, attribute_map, required)."""
    models = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        tables = {
            statement.targets[0].id: ast.literal_eval(statement.value)
            for statement in node.body
            if isinstance(statement, ast.Assign) and isinstance(statement.targets[0], ast.Name)
            and statement.targets[0].id in ("openapi_types", "attribute_map")
        }
        if len(tables) == 2:
            # A required attribute's setter refuses None: "Invalid value for `name`, must not be `None`".
            required = {attribute for attribute in tables["openapi_types"] if f"Invalid value for `{attribute}`, must not be `None`" in ast.get_source_segment(source, node)}
            models[node.name] = (tables["openapi_types"], tables["attribute_map"], required)
    return models


def kubernetes_definition(class_name, definitions):
    """The kubernetes-validate definition of a Kubernetes client class name: V1Container -> io.k8s.api.core.v1.Container."""
    # A Quantity (a number or a string like 512Mi), which the SDK types by these names and defines no model for.
    special = {name: "io.k8s.apimachinery.pkg.api.resource.Quantity" for name in ("ResourceQuantity", "V1beta1MetricQuantity")}
    if class_name in special:
        return special[class_name]
    match = re.fullmatch(r"(?:K8sIoApi(?P<group>[A-Z][a-z]+))?(?P<version>V\d\w*?)(?P<kind>[A-Z]\w*)", class_name)
    suffix = f".{match['version'].lower()}.{match['kind']}"
    candidates = [key for key in definitions if key.endswith(suffix)]
    if match["group"]:
        candidates = [key for key in candidates if f".{match['group'].lower()}." in key]
    preferred = [key for key in candidates if key.startswith(("io.k8s.api.core.", "io.k8s.apimachinery.pkg.apis.meta."))]
    return (preferred or candidates)[0]


def inference_service_schema(models, definitions):
    """A JSON Schema of V1beta1InferenceService from the SDK's models; Kubernetes types by reference into `definitions`."""
    schemas = {}
    section = "$defs" if "$defs" in definitions else "definitions"  # the key kubernetes-validate's schemas keep them under

    def of_type(type_name):
        if type_name.startswith("list["):
            return {"type": "array", "items": of_type(type_name[5:-1])}
        if type_name.startswith("dict("):
            return {"type": "object", "additionalProperties": of_type(type_name[5:-1].split(", ", 1)[1])}
        if type_name in ("str", "int", "bool", "float", "object"):
            return {"str": {"type": "string"}, "int": {"type": "integer"}, "bool": {"type": "boolean"}, "float": {"type": "number"}, "object": {}}[type_name]
        if type_name in models:
            if type_name not in schemas:
                schemas[type_name] = {}  # placed first: recursive types end here
                openapi_types, attribute_map, required = models[type_name]
                if type_name == "V1beta1InferenceService":  # a manifest has no status (the controller writes it, in Knative's types)
                    openapi_types = {attribute: kind for attribute, kind in openapi_types.items() if attribute != "status"}
                schemas[type_name].update({
                    "type": "object",
                    "properties": {attribute_map[attribute]: of_type(kind) for attribute, kind in openapi_types.items()},
                    "required": sorted(attribute_map[attribute] for attribute in required),
                    "additionalProperties": False,
                })
            return {"$ref": f"#/$defs/{type_name}"}
        return {"$ref": f"_definitions.json#/{section}/{kubernetes_definition(type_name, definitions[section])}"}

    root = of_type("V1beta1InferenceService")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "inference-service.json", **root, "$defs": schemas}


@pytest.fixture(scope="session")
def inference_service_validator(kserve_models):
    folder = pathlib.Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"v{kubernetes_validate.latest_version()}-local-strict"
    definitions_document = json.loads((folder / "_definitions.json").read_text())
    schema = inference_service_schema(kserve_models, definitions_document)
    registry = referencing.Registry().with_resources([
        ("_definitions.json", referencing.Resource.from_contents(definitions_document, referencing.jsonschema.DRAFT202012)),
        ("inference-service.json", referencing.Resource.from_contents(schema)),
    ])
    return jsonschema.Draft202012Validator(schema, registry=registry)


@pytest.mark.parametrize("named", INFERENCE_SERVICES, ids=map(object_id, INFERENCE_SERVICES))
def test_inference_services_match_kserves_schema(named, inference_service_validator):
    doc = named[1]
    assert (doc["apiVersion"], doc["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    inference_service_validator.validate(doc)


def inference_service(name_part):
    return copy.deepcopy(next(doc for name, doc in INFERENCE_SERVICES if name_part in name))


def misspelt_model_format(service):
    service["spec"]["predictor"]["model"]["modelFormat"] = {"nam": "tensorflow"}


def replicas_as_text_in_the_predictor(service):
    service["spec"]["predictor"]["minReplicas"] = "one"


def container_probe_without_handler_type(service):
    service["spec"]["predictor"]["model"]["readinessProbe"] = {"httpGet": {"path": "/v1/models/dcgan"}}  # no port: required


@pytest.mark.parametrize("breakage", [misspelt_model_format, replicas_as_text_in_the_predictor, container_probe_without_handler_type])
def test_a_broken_inference_service_fails_kserves_schema(breakage, inference_service_validator):
    service = inference_service("tensorflow")
    breakage(service)
    with pytest.raises(jsonschema.ValidationError):
        inference_service_validator.validate(service)


# -- agreement with keras-dcgan serve ------------------------------------------------------------------------


def serve_pod_specs():
    """(where, pod spec, serve container) of every pod that runs keras-dcgan serve."""
    pods = [(name, doc["spec"]["template"]["spec"]) for name, doc in KUBERNETES_OBJECTS if doc["kind"] == "Deployment"]
    pods += [(name, doc["spec"]["predictor"]) for name, doc in INFERENCE_SERVICES if "containers" in doc["spec"]["predictor"]]
    return [(name, pod, container) for name, pod in pods for container in pod["containers"] if container.get("image", "").split("/")[-1].startswith("keras-dcgan-serve")]


def check_serve_pod(pod, container):
    from keras_dcgan.cli import build_parser

    args = build_parser().parse_args(["serve", *container["args"]])
    ports = [port["containerPort"] for port in container["ports"]]
    assert args.port in ports and args.host == "0.0.0.0"
    for probe, route in (("readinessProbe", "/v2/health/ready"), ("livenessProbe", "/v2/health/live")):
        assert container[probe]["httpGet"]["path"] == route
        assert container[probe]["httpGet"]["port"] in (args.port, *(port.get("name") for port in container["ports"]))
    assert pod["terminationGracePeriodSeconds"] >= args.shutdown_delay + args.drain_timeout + GRACE_MARGIN_SECONDS
    assert args.workers is not None  # the default counts the node's cores, not the pod's CPU


SERVE_PODS = serve_pod_specs()


@pytest.mark.parametrize("where, pod, container", SERVE_PODS, ids=[name for name, _, _ in SERVE_PODS])
def test_serve_pods_use_the_commands_flags_its_health_routes_and_a_grace_period_covering_the_drain(where, pod, container):
    check_serve_pod(pod, container)


def test_a_grace_period_shorter_than_the_drain_or_an_unknown_flag_fails():
    _, pod, container = copy.deepcopy(SERVE_PODS[0])
    pod["terminationGracePeriodSeconds"] = 10
    with pytest.raises(AssertionError):
        check_serve_pod(pod, container)
    _, pod, container = copy.deepcopy(SERVE_PODS[0])
    container["args"].append("--drain-timout=3")
    with pytest.raises(SystemExit):
        check_serve_pod(pod, container)
