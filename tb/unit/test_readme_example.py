"""The Amaranth integration example of the README elaborates (so the front door cannot show code
that no longer fits the core's ports)."""
import os
import re

from amaranth.back import rtlil

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def test_readme_amaranth_example_elaborates():
    with open(README) as f:
        code = re.search(r"```python\n(.*?)```", f.read(), re.S)[1]
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)
    top = scope["MyVirtioBlk"]()
    text = rtlil.convert(top, name="my_blk")
    assert re.search(r"cell \\my_blk\.fe \\fe\b", text), "the front-end is instantiated as fe"
    assert top.params.device_type == 2, "the example builds a virtio-blk function"
