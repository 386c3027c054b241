"""Reading §III beside the code: shapes of named submodules on a real image, parameters per
part of Fig. 2, and the library source of each equation (notebook 01)."""

from __future__ import annotations

import inspect

import pandas as pd
import torch

from m2ir_lib.model import M2IR


def trace(model: M2IR, image: torch.Tensor, modules: list[str]) -> pd.DataFrame:
    """Input and output shapes of named submodules on one forward pass (the walkthrough's
    shape table), e.g. ["encoder1.0.attn.w_l1", "adecs.2.dgea"].

    Returns:
        DataFrame: module, class, input shape, output shape (first tensor of a tuple).
    """
    named = dict(model.named_modules())
    unknown = [m for m in modules if m not in named]
    if unknown:
        raise ValueError(f"no submodule(s) {unknown} in {type(model).__name__}")
    rows: dict[str, dict] = {}

    def shape(t):
        while isinstance(t, (tuple, list)) and t:
            t = t[0]
        return tuple(t.shape) if isinstance(t, torch.Tensor) else None

    def record(name):
        def hook(mod, args, out):  # returns None: the module's output is left as it is
            rows.setdefault(
                name,
                {
                    "module": name,
                    "class": type(mod).__name__,
                    "input": shape(args),
                    "output": shape(out),
                },
            )

        return hook

    hooks = [named[m].register_forward_hook(record(m)) for m in modules]
    try:
        with torch.no_grad():
            model.eval()(image[None] if image.ndim == 3 else image)
    finally:
        for h in hooks:
            h.remove()
    return pd.DataFrame([rows[m] for m in modules if m in rows])


def parameter_table(model: M2IR) -> pd.DataFrame:
    """Parameters per top-level part of the network (Fig. 2's boxes), with the total."""
    rows = [
        {"part": name, "class": type(m).__name__, "params": sum(p.numel() for p in m.parameters())}
        for name, m in model.named_children()
    ]
    rows.append(
        {"part": "total", "class": "", "params": sum(p.numel() for p in model.parameters())}
    )
    return pd.DataFrame(rows)


def show_source(obj):
    """The library's code for `obj` (a function, method or class), to read beside its equation."""
    from IPython.display import Code

    return Code(inspect.getsource(obj), language="python")
