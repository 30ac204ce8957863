"""The generated reference page docs/register-map.md cannot drift from the code: it is what
``python -m sim.docs`` (``make docs``) writes from the parameter object, the configuration-space
image and the port description the RTL is built from."""
import pytest

from sim import docs


def test_register_map_is_generated():
    with open(docs.PAGE) as f:
        committed = f.read()
    assert committed == docs.register_map(), \
        "docs/register-map.md is stale: run `make docs` and commit the page"


@pytest.mark.parametrize("needle", ["| `0x004` |", "| common | 0 | `0x0000` |", "`doorbell__payload`",
                                    "| `0x12` | 8 | status |", "| `0x16` | 16 | queue_select |"])
def test_register_map_shows(needle):
    """The page has the rows a reader looks for (config dword, region, port, legacy and common
    registers), so an empty or truncated page cannot pass the comparison above by accident."""
    assert needle in docs.register_map()
