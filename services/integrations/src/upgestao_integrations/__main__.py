"""``python -m upgestao_integrations <command>``: see ``upgestao_kernel.cli``."""

import upgestao_kernel.green  # noqa: F401,I001  (first: eventlet monkey-patching)

from upgestao_kernel.cli import main as kernel_main

from .definition import DEFINITION


def main() -> int:
    return kernel_main(DEFINITION)


if __name__ == "__main__":
    raise SystemExit(main())
