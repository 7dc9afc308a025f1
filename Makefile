# A thin driver over the CMake presets; everything else is plain CMake.
#   make demo   install what is missing, build release, run the chat demo
#   make test   build and run every test: plain, ASan+UBSan, TSan, the
#               systematic build, and the simulation's seeded run
#               (about 2.5 minutes on two cores)
#   make bench  build release and run every benchmark
#   make test-systematic  the stress tests over SEEDS seeded interleavings
#               each, then the systematic build's tests (docs/testing.md)
#   make test-sim  the simulation scenarios over SIM_SEEDS seeds from the
#               commit, in the dev and asan builds, and the tape corpus
JOBS ?= $(shell nproc)
SEEDS ?= 100
SIM_SEEDS ?= 200

.PHONY: deps demo test test-dev test-asan test-tsan test-systematic test-sim \
	bench format \
	format-check clean

deps:
	@./scripts/install-deps.sh

demo: deps
	cmake --preset release
	cmake --build --preset release -j $(JOBS) --target sample_chat \
	    bench_chat_load
	./scripts/chat-demo.sh build/release 5

test: deps test-dev test-asan test-tsan test-systematic test-sim

test-dev test-asan test-tsan: test-%:
	cmake --preset $*
	cmake --build --preset $* -j $(JOBS)
	ctest --preset $*

test-systematic: deps
	JOBS=$(JOBS) ./scripts/systematic.sh --seeds $(SEEDS)

test-sim: deps
	JOBS=$(JOBS) ./scripts/sim.sh --seeds $(SIM_SEEDS) build/dev
	JOBS=$(JOBS) ./scripts/sim.sh --seeds $(SIM_SEEDS) build/asan

bench: deps
	cmake --preset release
	cmake --build --preset release -j $(JOBS)
	./bench/run.sh build/release

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build
