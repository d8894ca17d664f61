"""The one way this project opens a LiteRT (TensorFlow Lite) file: `ai-edge-litert`'s interpreter, TensorFlow-free.

ai-edge-litert comes with the extra `keras-dcgan[litert]`; without it, opening a .tflite file
raises MissingLiteRTError, one line saying what to install.
"""

LITERT_EXTRA_HINT = 'running a .tflite file needs ai-edge-litert, which comes with the LiteRT extra: pip install "keras-dcgan[litert]"'


class MissingLiteRTError(ValueError):
    """ai-edge-litert is not installed."""


def require_litert():
    """ai-edge-litert's Interpreter class, or MissingLiteRTError: `serve` asks before any worker process starts."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ModuleNotFoundError as error:
        raise MissingLiteRTError(LITERT_EXTRA_HINT) from error
    return Interpreter


def open_interpreter(content, threads=None):
    """A LiteRT interpreter of `content` (a .tflite file's bytes); `threads` None: LiteRT's default."""
    return require_litert()(model_content=content, num_threads=threads)
