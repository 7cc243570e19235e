"""The consent service and the access review, without a browser."""
