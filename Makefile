# Native programs on the quic.h ABI, linked with librust_quic.a.
#   make native   -> build/bin/h3-server, build/bin/h3-client, build/bin/abi-test
#   make asan     -> build/asan/abi-test (C side under AddressSanitizer)
CC ?= cc
CFLAGS ?= -O2 -g -Wall -Wextra -std=gnu11
US := packages/bun-usockets
INC := -I$(US)/src
LIB := target/release/librust_quic.a
# From `cargo rustc --print native-static-libs`.
LDLIBS := -lstdc++ -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc

.PHONY: native asan lib clean memcheck-bin
native: build/bin/h3-server build/bin/h3-client build/bin/abi-test

lib:
	cargo build --release -p rust-quic

$(LIB): lib

build/bin/%: $(US)/examples/%.c $(US)/src/quic.h $(US)/src/libusockets.h lib
	@mkdir -p build/bin
	$(CC) $(CFLAGS) $(INC) $< $(LIB) $(LDLIBS) -o $@

build/bin/abi-test: $(US)/tests/abi_test.c $(US)/src/quic.h $(US)/src/quic_embed.h $(US)/src/libusockets.h lib
	@mkdir -p build/bin
	$(CC) $(CFLAGS) $(INC) $< $(LIB) $(LDLIBS) -o $@

# Valgrind checks a debug build of the library: optimized code branches on bytes
# it has not initialized yet in ways valgrind cannot follow (false positives).
memcheck-bin: $(US)/tests/abi_test.c $(US)/src/quic.h $(US)/src/quic_embed.h
	cargo build -p rust-quic
	@mkdir -p build/memcheck
	$(CC) -O0 -g -std=gnu11 $(INC) $< target/debug/librust_quic.a $(LDLIBS) -o build/memcheck/abi-test

# The C loop (usockets-sys, USOCKETS_ASAN) and the ABI test both instrumented;
# a target dir of its own so the release library stays uninstrumented.
asan: $(US)/tests/abi_test.c $(US)/src/quic.h $(US)/src/quic_embed.h
	USOCKETS_ASAN=1 cargo build -p rust-quic --target-dir target/asan
	@mkdir -p build/asan
	$(CC) -O1 -g -fsanitize=address -fno-omit-frame-pointer -std=gnu11 $(INC) $< target/asan/debug/librust_quic.a $(LDLIBS) -o build/asan/abi-test

clean:
	rm -rf build
