# mininq tasks. `just --list` shows them.

# The Quick start's .venv when it exists; PYTHON overrides.
python := env_var_or_default("PYTHON", if path_exists(".venv/bin/python") == "true" { ".venv/bin/python" } else { "python3" })

# Run mininq from source with ./mininq.db on 127.0.0.1:6390
run *ARGS:
    {{python}} -m mininq serve {{ARGS}}

# The whole test suite
test *ARGS:
    {{python}} -m pytest {{ARGS}}

# The one-file executable: dist/mininq
build:
    bash build/build.sh

# dist/mininq plus dist/SHA256SUMS
release: build
    bash build/release.sh

# The full benchmark; rewrites docs/benchmarks.md
bench *ARGS:
    {{python}} -m bench {{ARGS}}

# Static checks
lint:
    {{python}} -m ruff check mininq tests bench build
