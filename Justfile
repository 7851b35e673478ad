# mininq tasks. `just --list` shows them.

# The Quick start's .venv when it exists; PYTHON overrides.
python := env_var_or_default("PYTHON", if path_exists(".venv/bin/python") == "true" { ".venv/bin/python" } else { "python3" })

# Run mininq from source with ./mininq.db on 127.0.0.1:6390
run *ARGS:
    {{python}} -m mininq serve {{ARGS}}

# The whole test suite
test *ARGS:
    {{python}} -m pytest {{ARGS}}

# The one-file executable: dist/mininq, built with this machine's Python (quick, for development)
build:
    bash build/build.sh

# The release executable: dist/mininq built inside Debian 11, runs on glibc 2.28+ (root, slow cold)
build-portable:
    bash build/portable.sh

# The portable dist/mininq plus dist/SHA256SUMS
release: build-portable
    bash build/release.sh

# The full benchmark; rewrites docs/benchmarks.md
bench *ARGS:
    {{python}} -m bench {{ARGS}}

# Static checks
lint:
    {{python}} -m ruff check mininq tests bench build
