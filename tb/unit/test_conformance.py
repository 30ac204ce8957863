"""The traceability tool (tb/conformance/citations.py): requirement parsing, citation rules, the committed
copy of the requirement list."""
import io
import textwrap

import pytest

from tb.conformance import citations as c


def test_committed_copy_matches_spec():
    spec = c.find_spec()
    if spec is None:
        pytest.skip("the shared spec is not beside the repository")
    want = c.parse_spec(spec)
    got = c.read_requirements(c.REQ_COPY)
    assert list(got) == list(want), "tb/conformance/requirements.txt is stale: python -m tb.conformance --write-requirements"
    for rid, (section, level, _) in want.items():
        assert got[rid][:2] == (section, level), rid


def test_only_test_docstrings_count(tmp_path):
    (tmp_path / "mod_test.py").write_text(textwrap.dedent('''
        """CC-01 in a module docstring does not count."""
        import cocotb

        @cocotb.test()
        async def thing_test(dut):
            """CC-02, DRV-14: counted."""
            # CC-03 in a comment does not count

        async def helper_test(dut):
            """CC-04: not decorated, not a cocotb test."""

        def helper():
            """CC-05: a helper."""

        def test_unit():
            """NTF-D1 in a pytest test counts."""
    '''))
    cites = c.collect_citations(str(tmp_path))
    assert sorted(cites) == ["CC-02", "DRV-14", "NTF-D1"]
    assert cites["CC-02"][0].endswith("mod_test.py::thing_test")


def test_report_counts_and_unknown_ids():
    reqs = {"CC-01": ("2.3 Common", "M", "x"), "CC-02": ("2.3 Common", "M", "y"),
            "CC-15": ("2.3 Common", "M", "z")}
    cites = {"CC-01": ["t::a_test"], "XX-99": ["t::b_test"]}
    out = io.StringIO()
    missing, unknown = c.report(reqs, cites, c.REQ_COPY, out=out)
    text = out.getvalue()
    assert missing == ["CC-02"] and unknown == ["XX-99"]
    assert "2.3 Common: 1/2 covered, 1 not applicable" in text


def test_repository_citations_are_known_and_na_ids_exist():
    reqs, _ = c.load_requirements()
    cites = c.collect_citations()
    assert not set(cites) - set(reqs), f"unknown IDs cited: {sorted(set(cites) - set(reqs))}"
    assert not set(c.NOT_APPLICABLE) - set(reqs)
