"""benchmarks/mutation.py's rewrite of decorated methods, which mutmut 3 would otherwise skip."""

import ast
import importlib.util
import textwrap
from pathlib import Path

SOURCE = textwrap.dedent('''
    from functools import cached_property


    class Box:
        def __init__(self, n):
            self.n = n
            self.calls = 0

        @cached_property
        def double(self):
            self.calls += 1
            return 2 * self.n

        @property
        def half(self):
            return self.n / 2

        @staticmethod
        def one():
            return 1
    ''')


def _mutation_script():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "mutation.py"
    spec = importlib.util.spec_from_file_location("mutation_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_properties_become_plain_methods_wrapped_after_their_body():
    rewritten = _mutation_script().undecorated(SOURCE)
    decorated = {node.name: [ast.unparse(d) for d in node.decorator_list]
                 for node in ast.walk(ast.parse(rewritten)) if isinstance(node, ast.FunctionDef)}
    assert decorated == {"__init__": [], "double": [], "half": [], "one": ["staticmethod"]}
    assert "    double = cached_property(double)\n" in rewritten
    assert "    half = property(half)\n" in rewritten
    namespace = {}
    exec(compile(rewritten, "box", "exec"), namespace)
    box = namespace["Box"](3)
    assert (box.double, box.double, box.calls, box.half, box.one()) == (6, 6, 1, 1.5, 1)
