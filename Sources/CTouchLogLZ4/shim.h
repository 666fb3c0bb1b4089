#ifndef CTOUCHLOG_LZ4_SHIM_H
#define CTOUCHLOG_LZ4_SHIM_H
#include <lz4.h>
#endif
