"""Browser tests of the consent loop (docs/consent.md)."""
