/* The library version. */
#ifndef TROUPE_VERSION_H
#define TROUPE_VERSION_H

#include <troupe/common.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TR_VERSION_MAJOR 0
#define TR_VERSION_MINOR 1
#define TR_VERSION_PATCH 0

/**
 * The version of the library actually linked, "MAJOR.MINOR.PATCH".
 *
 * Ownership: returns borrowed, valid for the life of the process.
 * Context:   any thread.
 */
TR_API const char *tr_version(void);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_VERSION_H */
