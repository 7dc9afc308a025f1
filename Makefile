# A thin driver over the CMake presets; everything else is plain CMake.
#   make demo   install what is missing, build release, run the chat demo
#   make test   build and run every test: plain, ASan+UBSan, TSan
#   make bench  build release and run every benchmark
#   make test-systematic  the stress tests over seeded interleavings
#               (docs/testing.md)
JOBS ?= $(shell nproc)

.PHONY: deps demo test test-dev test-asan test-tsan test-systematic bench format \
	format-check clean

deps:
	@./scripts/install-deps.sh

demo: deps
	cmake --preset release
	cmake --build --preset release -j $(JOBS) --target sample_chat \
	    bench_chat_load
	./scripts/chat-demo.sh build/release 5

test: deps test-dev test-asan test-tsan

test-dev test-asan test-tsan: test-%:
	cmake --preset $*
	cmake --build --preset $* -j $(JOBS)
	ctest --preset $*

test-systematic: deps
	JOBS=$(JOBS) ./scripts/systematic.sh

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
