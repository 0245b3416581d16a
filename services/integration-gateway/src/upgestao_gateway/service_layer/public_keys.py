"""The cache of identity's public keys: the kernel's (every service that verifies tokens keeps one)."""

from upgestao_kernel.public_keys import KeysUnavailable, PublicKeys

__all__ = ["KeysUnavailable", "PublicKeys"]
