/*
 * The test-only bug switches (tr_testbug.h): one word, 0 unless a test
 * brings a fixed bug back on purpose.
 */
#include "common/tr_testbug.h"

tr_atomic(uint32_t) tr__test_bugs;
