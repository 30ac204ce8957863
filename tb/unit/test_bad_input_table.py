"""The bad-input inventory (docs/bad-input.md) cannot rot: every row names at least one test, every named test exists (a cocotb test in a ``tb/integration/cocotb`` module that a pytest
entry of ``make test`` runs, or a pytest test function), and every requirement ID it cites is in
the requirement list."""
import ast
import os
import re

import pytest

from tb.conformance import citations as conformance

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TB = os.path.join(ROOT, "tb")
PAGE = os.path.join(ROOT, "docs", "bad-input.md")
SECTION = "# Bad input"
TEST_REF = re.compile(r"`([\w/]+\.py)::(\w+)`")
REQ_ID = re.compile(r"\b([A-Z]{2,4}-D?\d{2})\b")


def section_text(text, title=SECTION):
    """The page text from ``title`` to the next level-1 heading."""
    start = text.index(title + "\n")
    end = text.find("\n# ", start + len(title))
    return text[start:] if end < 0 else text[start:end]


def table_rows(section):
    """Body rows of every Markdown table in ``section``, as lists of cell strings."""
    rows = []
    for line in section.splitlines():
        if not line.startswith("|") or re.fullmatch(r"\|[-| ]+\|", line):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == "bad input":          # header row
            continue
        rows.append(cells)
    return rows


def defined_tests(path):
    """Module-level test functions of ``path``: ``{name: is_cocotb_test}``."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    out = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            cocotb_test = any(
                isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute)
                and d.func.attr == "test" and getattr(d.func.value, "id", "") == "cocotb"
                for d in node.decorator_list)
            out[node.name] = cocotb_test
    return out


def cocotb_modules_run():
    """Stems of the ``tb/integration/cocotb`` modules that the pytest entries (tb/integration/test_*.py) run: each names
    its modules as a string, either whole (``tb.integration.cocotb.x_test``) or as ``x`` in a module list."""
    names = set()
    entries = os.path.join(TB, "integration")
    for f in sorted(os.listdir(entries)):
        if f.startswith("test_") and f.endswith(".py"):
            with open(os.path.join(entries, f)) as fh:
                tree = ast.parse(fh.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    v = node.value
                    names.add(v.removeprefix("tb.integration.cocotb.").removesuffix("_test"))
    return names


def check_section(text):
    """Problems with the bad-input section ``text`` (empty when it is sound)."""
    problems = []
    rows = table_rows(section_text(text))
    if not rows:
        return ["no table rows in the bad-input page"]
    run = cocotb_modules_run()
    known_ids = set(conformance.read_requirements(conformance.REQ_COPY))
    cache = {}
    for cells in rows:
        what = cells[0]
        if len(cells) != 5:
            problems.append(f"{what}: {len(cells)} cells, expected 5")
            continue
        refs = TEST_REF.findall(cells[4])
        if not refs:
            problems.append(f"{what}: names no test")
        for rel, name in refs:
            path = os.path.join(TB, rel)
            if not os.path.exists(path):
                problems.append(f"{what}: tb/{rel} does not exist")
                continue
            if path not in cache:
                cache[path] = defined_tests(path)
            tests = cache[path]
            if rel.startswith("integration/cocotb/"):
                if not tests.get(name):
                    problems.append(f"{what}: tb/{rel} has no cocotb test {name}")
                stem = os.path.basename(rel)[:-3].removesuffix("_test")
                if stem not in run:
                    problems.append(f"{what}: no pytest entry in tb/integration/test_*.py runs tb/{rel}")
            elif not (name.startswith("test") and name in tests):
                problems.append(f"{what}: tb/{rel} has no pytest test {name}")
        for rid in REQ_ID.findall(cells[3]):
            if rid not in known_ids:
                problems.append(f"{what}: {rid} is not a requirement ID")
    return problems


def test_bad_input_table():
    with open(PAGE) as f:
        text = f.read()
    problems = check_section(text)
    assert not problems, "docs/bad-input.md:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("row, why", [
    ("| x | e | a | PCIe 2.3.1 | |", "names no test"),
    ("| x | e | a | PCIe 2.3.1 | `integration/cocotb/request_handling_test.py::no_such_test` |",
     "has no cocotb test no_such_test"),
    ("| x | e | a | PCIe 2.3.1 | `integration/cocotb/request_handling_test.py::_check_ur` |",
     "has no cocotb test _check_ur"),
    ("| x | e | a | PCIe 2.3.1 | `unit/test_depacketizer.py::test_nothing` |",
     "has no pytest test test_nothing"),
    ("| x | e | a | PCIe 2.3.1 | `integration/cocotb/nowhere_test.py::a_test` |", "does not exist"),
    ("| x | e | a | XYZ-99 | `unit/test_depacketizer.py::test_malformed` |",
     "XYZ-99 is not a requirement ID"),
])
def test_checker_catches(row, why):
    """The check fails on a broken row (so a passing check means something)."""
    text = f"{SECTION}\n\n| bad input | example | answer | spec | tests |\n|---|---|---|---|---|\n{row}\n"
    problems = check_section(text)
    assert any(why in p for p in problems), problems
