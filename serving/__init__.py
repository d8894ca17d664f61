"""Inference side: onnxruntime runner, TF Serving clients, REST server. Never imports TensorFlow.

    session.py        GeneratorSession: the ONNX or LiteRT generator file (latents or seeds -> images, PNGs)
    runtimes.py       onnxruntime and LiteRT behind one model interface, chosen by the file's suffix
    manifest.py       reading manifest.json and checking a file's size and SHA-256 against it
    rest_api.py       TF Serving's REST API (routes, row/columnar predict, errors) over a ModelRepository
    model_repository.py  which session serves a model at a version or label, each version's state, and
                      the polling of a model base path (`serve --model-base-path`)
    model_config.py   TF Serving's model config file (version policy, labels), parsed with protobuf
    server.py         that API on uvicorn, with a per-request deadline and a body cap (`keras-dcgan serve`)
    workers.py        several server processes on one port, under uvicorn's supervisor (`serve --workers`)
    batching.py       concurrent predictions sharing model calls (TF Serving's --enable_batching)
    metrics.py        Prometheus metrics of `keras-dcgan serve --metrics`
    json_codec.py     request and response bodies as JSON (orjson)
    rest_client.py    RestClient for TF Serving's REST API and `keras-dcgan serve`
    grpc_client.py    GrpcClient for TF Serving's gRPC API (extra keras-dcgan[grpc], which imports TensorFlow)
    command.py        the `generate` and `serve` subcommands
    docker-compose.yml, models.config, docker-bin/   running TF Serving itself

Modules are imported one by one (nothing is imported here), so `keras-dcgan fit --help` stays fast.
"""
