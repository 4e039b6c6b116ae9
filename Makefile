# The two commands of the README. Both install what they need first (Debian packages, guest
# fixture images), and do nothing for that when it is already there.
#
#   make example   the main job: a real VM test, end to end, on the default image
#   make test      the whole test suite (unit, macro UI, end-to-end against real QEMU)

SHELL := /bin/bash
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
	fixtures/fetch-debs target/vmtest-debs lighttpd
	fixtures/fetch-sshd target/vmtest-sshd

example: setup
	fixtures/build tiny >/dev/null
	$(CARGO) test --locked -p vmtest-examples --test quickstart -- --nocapture --test-threads=$(TEST_THREADS)

# The backend matrix (tests/tests/backends.rs, every test under `matrix::`) boots a VM or more
# per test: once nextest ran it, the plain cargo test step skips it rather than boot them again.
test: images
	@mkdir -p target
	@status=0; skip=; \
	{ \
	  $(CARGO) build --locked -p vmtest-runner --features libvirt || status=1; \
	  if $(CARGO) nextest --version >/dev/null 2>&1; then \
	    echo "== the examples, the backend matrix and the lifecycle tests under cargo-nextest (one process per test)"; \
	    $(CARGO) nextest run --locked --workspace --test-threads=$(TEST_THREADS) \
	      --no-fail-fast -E 'package(vmtest-examples) | binary(=backends) | binary(=lifecycle) | binary(=suite) | binary(=suite_harness) | binary(=network) | binary(=env_shared)' \
	      || status=1; \
	    skip="--skip matrix::"; \
	  else \
	    echo "!! cargo-nextest is not installed: the nextest run of the examples and lifecycle tests is SKIPPED"; \
	    echo "!! (install it with: cargo install cargo-nextest --locked)"; \
	  fi; \
	  echo "== every test of the workspace"; \
	  $(CARGO) test --locked --no-fail-fast --workspace --all-targets -- --test-threads=$(TEST_THREADS) $$skip || status=1; \
	  $(CARGO) test --locked --workspace --doc || status=1; \
	  echo "== the sweep a CI job ends with: whatever a crashed test left behind"; \
	  target/debug/vmtest-runner sweep || status=1; \
	  exit $$status; \
	} 2>&1 | tee target/make-test.log; status=$${PIPESTATUS[0]}; \
	awk -f tests/summary.awk target/make-test.log; \
	exit $$status
