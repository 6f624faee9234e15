"""Testing support: the store conformance suite (:mod:`flowkit.testing.conformance`)."""
