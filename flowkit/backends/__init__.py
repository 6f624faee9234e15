"""Store and executor adapters, one module per technology, chosen by URL scheme."""
