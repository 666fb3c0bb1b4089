#ifndef CTOUCHLOG_NATS_SHIM_H
#define CTOUCHLOG_NATS_SHIM_H
#include <nats/nats.h>
#endif
