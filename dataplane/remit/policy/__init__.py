"""The policy core: compile resources into a bundle, sign it, and decide requests with it."""
