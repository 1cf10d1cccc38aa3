"""Every docstring example of kcourse's layers and models runs, and gives the shapes its comment states.

An example's lines start with `>>>` (continued by `...`); a line ending in
`# (2, 10, 64)` claims the shape of what it evaluates to (a tuple of tensors:
a tuple of shapes). Shapes print differently on each backend, hence the
comments rather than doctest's expected output.
"""

import ast
import inspect

import numpy as np
import pytest

import kcourse.layers
import kcourse.models

PUBLIC = [
    obj
    for module in (kcourse.layers, kcourse.models)
    for name, obj in vars(module).items()
    if inspect.isclass(obj) and not name.startswith("_")
]


def examples(doc):
    """The example's statements, joined across `...` continuations."""
    statements = []
    for line in (doc or "").splitlines():
        line = line.strip()
        if line.startswith(">>> "):
            statements.append(line[4:])
        elif line.startswith("...") and statements:
            statements[-1] += "\n" + line[4:]
    return statements


def shape_of(value):
    """A shape (any backend's type) as a tuple of ints; a tuple of shapes or tensors as a tuple of those."""
    if hasattr(value, "shape"):
        value = value.shape
    items = list(value)
    if all(isinstance(d, (int, np.integer)) or type(d).__name__ == "Dimension" for d in items):
        return tuple(int(d) for d in items)
    return tuple(shape_of(v) for v in items)


@pytest.mark.parametrize("cls", PUBLIC, ids=[c.__name__ for c in PUBLIC])
def test_docstring_example_runs_and_states_the_right_shapes(cls):
    import keras

    statements = examples(cls.__doc__)
    assert statements, f"{cls.__name__} has no Example in its docstring"
    namespace = {"np": np, "keras": keras, **vars(kcourse.layers), **vars(kcourse.models)}
    claims = 0
    for statement in statements:
        code, _, comment = statement.rpartition("#") if "#" in statement else (statement, "", "")
        try:
            tree = ast.parse(code.strip(), mode="eval")
        except SyntaxError:
            exec(statement, namespace)
            continue
        value = eval(compile(tree, cls.__name__, "eval"), namespace)
        if comment.strip().startswith("("):
            assert shape_of(value) == ast.literal_eval(comment.strip()), f"{cls.__name__}: {statement}"
            claims += 1
    assert claims, f"{cls.__name__}'s example states no shape"
