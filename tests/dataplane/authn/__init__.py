"""Tests of the gateway's token authentication, JWKS cache and RFC 9728 metadata."""
