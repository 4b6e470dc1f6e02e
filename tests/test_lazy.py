"""hptune._lazy: a heavy dependency named at the top of a module, imported on first use."""

from __future__ import annotations

import subprocess
import sys


def test_a_lazy_module_imports_on_the_first_attribute_read() -> None:
    code = (
        "import sys\n"
        "from hptune._lazy import LazyImport\n"
        "colorsys = LazyImport('colorsys')\n"
        "print('colorsys' in sys.modules)\n"
        "print(colorsys.rgb_to_hsv(1.0, 0.0, 0.0))\n"
        "print('colorsys' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:3] == ["False", "(0.0, 1.0, 1.0)", "True"]


def test_a_lazy_submodule_reads_like_the_module() -> None:
    from hptune._lazy import LazyImport

    lazy = LazyImport("email.utils")
    import email.utils

    assert lazy.parseaddr is email.utils.parseaddr
    assert lazy.__name__ == "email.utils"
