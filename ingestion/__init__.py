"""Sources -> rows: discover, read/decode, plan against the store, the pipeline, the ledger."""
