#ifndef CTOUCHLOG_XXHASH_SHIM_H
#define CTOUCHLOG_XXHASH_SHIM_H
#include <xxhash.h>
#endif
