# The two commands of the README. Both install what they need first (Debian packages, guest
# fixture images), and do nothing for that when it is already there.
#
#   make example   the main job: a real VM test, end to end, on the default image
#   make test      the whole test suite (unit, macro UI, end-to-end against real QEMU)

CARGO ?= cargo
# Two test threads: on a 2-core host under TCG, more concurrent VMs only slow every boot down.
TEST_THREADS ?= 2

.PHONY: example test setup images

setup:
	fixtures/setup-host

images: setup
	fixtures/build tiny >/dev/null
	fixtures/build debian-12 >/dev/null
	fixtures/build tiny-disk >/dev/null

example: setup
	fixtures/build tiny >/dev/null
	$(CARGO) test --locked -p vmtest-examples -- --nocapture --test-threads=$(TEST_THREADS)

test: images
	$(CARGO) test --locked --workspace --all-targets -- --test-threads=$(TEST_THREADS)
	$(CARGO) test --locked --workspace --doc
	@# The same attribute under nextest (one process per test).
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --locked -p vmtest-examples --test-threads=$(TEST_THREADS); \
	else \
		echo "!! cargo-nextest is not installed: the nextest run of vmtest-examples is SKIPPED" >&2; \
		echo "!! (install it with: cargo install cargo-nextest --locked)" >&2; \
	fi
