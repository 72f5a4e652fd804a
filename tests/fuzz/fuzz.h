/* Fuzz targets: libFuzzer's entry point, also called by the replay test
 * (replay.c) in the normal suite. */
#ifndef REDISLOCK_FUZZ_H
#define REDISLOCK_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
