"""Request bodies for the unit tests: the source's examples and builders of valid bodies."""
