"""Identity's public keys as a JWKS document: the kernel's parser (every service verifies tokens)."""

from upgestao_kernel.jwks import MAX_KEYS, InvalidJwks, parse_jwks

__all__ = ["MAX_KEYS", "InvalidJwks", "parse_jwks"]
