"""``python -m upgestao_identity <command>``: see ``upgestao_kernel.cli``."""

import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()  # before anything else imports socket or threading

from upgestao_kernel.cli import main as kernel_main  # noqa: E402

from .definition import DEFINITION  # noqa: E402


def main() -> int:
    return kernel_main(DEFINITION)


if __name__ == "__main__":
    raise SystemExit(main())
