#ifndef CTOUCHLOG_SQLITE_SHIM_H
#define CTOUCHLOG_SQLITE_SHIM_H
// Test-only: the differential test's SQL reference. Nothing in the products links SQLite.
#include <sqlite3.h>
#endif
