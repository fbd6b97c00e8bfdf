"""Users' own recordings as training data: `thermal-synth dataset build|align|preview` (see `cli`)."""
