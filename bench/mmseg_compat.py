"""Make mmsegmentation 1.2.2 importable on `mmcv-lite`, with mmseg's own modules registered. (The
bench's models register themselves where they live, `heads/seg.py`; this shim imports no head.)

Why a stand-in: mmsegmentation 1.2.2 needs mmcv < 2.2, and the full mmcv (with its compiled CUDA/C++
ops in `mmcv._ext`) cannot be built here, so `mmcv-lite==2.1.0` is installed. mmcv-lite ships the
Python half of `mmcv.ops` but not `mmcv._ext`; every `mmcv/ops/*.py` runs
`ext_loader.load_ext('_ext', [names...])` at import time, which imports `mmcv._ext` and asserts that
each name is an attribute. `import mmseg.models` reaches `mmcv.ops` (through mmseg's heads and
losses), so it fails with `ModuleNotFoundError: No module named 'mmcv._ext'`.

What the stand-in does: before mmseg is imported, `install_ext_standin()` puts a module object in
`sys.modules["mmcv._ext"]` whose attributes are the exact names the installed mmcv asks for (found
by reading every `load_ext('_ext', [...])` call in the installed mmcv sources), each a callable that
raises `CompiledOpUnavailable` naming the op. Nothing is emulated: the segmentation probes
(frozen encoder + BN/1x1-conv head, mmseg datasets, pipelines, `IoUMetric`, `SegTTAModel`) use no
compiled op, so the stand-in is never called; if some other mmseg model ever calls one, it fails
loudly instead of computing anything wrong. `mmcv.utils.ext_loader.check_ops_exist()` keeps
answering False (the stand-in has no loader). With a full mmcv install the real `mmcv._ext` is
found first and the stand-in is not installed.
"""
from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import sys
import types
from functools import lru_cache
from pathlib import Path

EXT_MODULE = "mmcv._ext"
STANDIN_FLAG = "__bench_standin__"


class CompiledOpUnavailable(RuntimeError):
    """A compiled mmcv op was called, but only mmcv-lite (no `mmcv._ext`) is installed."""


def _missing_op(name: str):
    def op(*args, **kwargs):
        raise CompiledOpUnavailable(
            f"compiled mmcv op {name!r} called; the bench probes use no compiled ops "
            f"(mmcv._ext here is the bench's stand-in for mmcv-lite, see bench/mmseg_compat.py). "
            f"Install full mmcv (e.g. `pip install -U openmim && mim install 'mmcv>=2.0.0rc4,<2.2.0'`) "
            f"to use models that need it.")

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"Stand-in for the compiled mmcv op {name!r}: raises CompiledOpUnavailable."
    return op


@lru_cache(maxsize=1)
def requested_ext_symbols() -> tuple[str, ...]:
    """Every name the installed mmcv asks of `mmcv._ext` via `ext_loader.load_ext('_ext', [...])`."""
    spec = importlib.util.find_spec("mmcv")
    if spec is None or not spec.submodule_search_locations:
        return ()
    root = Path(next(iter(spec.submodule_search_locations)))
    names: list[str] = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        if "load_ext" not in text:
            continue
        for node in ast.walk(ast.parse(text)):
            if not (isinstance(node, ast.Call) and len(node.args) >= 2):
                continue
            fn = node.func
            if (fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", None)) != "load_ext":
                continue
            module, funcs = node.args[0], node.args[1]
            if isinstance(module, ast.Constant) and module.value == "_ext" and isinstance(funcs, (ast.List, ast.Tuple)):
                names += [e.value for e in funcs.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return tuple(dict.fromkeys(names))


class _ExtStandin(types.ModuleType):
    """`mmcv._ext` for mmcv-lite: known op names are attributes; any other public name is made on demand
    (so a newer mmcv asking for a name the scan missed still imports)."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        op = _missing_op(name)
        setattr(self, name, op)
        return op


def _real_ext_available() -> bool:
    if EXT_MODULE in sys.modules:
        return not getattr(sys.modules[EXT_MODULE], STANDIN_FLAG, False)
    try:
        return importlib.util.find_spec(EXT_MODULE) is not None
    except (ImportError, ValueError):
        return False


def install_ext_standin() -> types.ModuleType | None:
    """Register the stand-in `mmcv._ext` unless a real one exists; returns the stand-in (or None). Idempotent."""
    existing = sys.modules.get(EXT_MODULE)
    if existing is not None:
        return existing if getattr(existing, STANDIN_FLAG, False) else None
    if _real_ext_available():
        return None
    module = _ExtStandin(EXT_MODULE, "bench stand-in for the compiled mmcv._ext (mmcv-lite): every op raises")
    module.__spec__ = importlib.machinery.ModuleSpec(EXT_MODULE, loader=None)  # no loader: check_ops_exist() is False
    module.__file__ = __file__
    setattr(module, STANDIN_FLAG, True)
    for name in requested_ext_symbols():
        setattr(module, name, _missing_op(name))
    sys.modules[EXT_MODULE] = module
    import mmcv  # the parent package must know its child for `from mmcv import _ext`

    setattr(mmcv, "_ext", module)
    return module


_REGISTERED = False


def import_mmseg():
    """Import mmseg with the stand-in in place and register mmseg's modules (datasets, transforms,
    models, metrics). Returns the `mmseg` package."""
    global _REGISTERED
    install_ext_standin()
    import mmseg
    from mmseg.utils import register_all_modules

    if not _REGISTERED:
        register_all_modules(init_default_scope=False)
        _REGISTERED = True
    return mmseg


def mmseg_scope():
    """Context in which registry type names ('Resize', 'LoadAnnotations', ...) resolve in mmseg's scope."""
    from mmengine.registry import DefaultScope

    import_mmseg()
    return DefaultScope.overwrite_default_scope("mmseg")


def build_transforms(pipeline: list[dict]):
    """An mmengine `Compose` of mmseg/mmcv transforms from config dicts."""
    from mmengine.dataset import Compose

    with mmseg_scope():
        return Compose(pipeline)


__all__ = ["CompiledOpUnavailable", "EXT_MODULE", "build_transforms", "import_mmseg", "install_ext_standin",
           "mmseg_scope", "requested_ext_symbols"]
