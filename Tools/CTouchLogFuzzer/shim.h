#include <stddef.h>
#include <stdint.h>

/* libFuzzer's driver, present when touchlog-fuzz is linked with libclang_rt.fuzzer_no_main (Tools/fuzz does that).
   Declared weak so that the normal build links without it. */
extern int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size)) __attribute__((weak));

static inline int touchlog_fuzzer_is_linked(void) { return LLVMFuzzerRunDriver != 0; }

static inline int touchlog_fuzzer_run(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size)) {
    return LLVMFuzzerRunDriver(argc, argv, callback);
}
