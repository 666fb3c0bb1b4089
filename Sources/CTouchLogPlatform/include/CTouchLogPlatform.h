#ifndef CTOUCHLOG_PLATFORM_H
#define CTOUCHLOG_PLATFORM_H

/// Asks the processor to bring the cache line at `address` in for reading, without waiting for it: a group of
/// probes into a table far bigger than the cache issues its misses together this way.
static inline void touchlog_prefetch(const void *address) { __builtin_prefetch(address, 0, 3); }

#endif
