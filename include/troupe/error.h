/*
 * Error codes. Every fallible call returns TR_OK (0) or one of these
 * negative codes; their values never change.
 */
#ifndef TROUPE_ERROR_H
#define TROUPE_ERROR_H

#include <troupe/common.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TR_ERROR_MAP(X)                                                        \
    X(EINVAL, -1, "invalid argument")                                          \
    X(ENOMEM, -2, "out of memory")                                             \
    X(ENOACTOR, -3, "no such actor")                                           \
    X(EFULL, -4, "mailbox is full")                                            \
    X(ECLOSED, -5, "channel or mailbox closed")                                \
    X(ETIMEDOUT, -6, "timed out")                                              \
    X(ELAGGED, -7, "receiver fell behind")                                     \
    X(ESHUTDOWN, -8, "system is shutting down")                                \
    X(EALREADY, -9, "already done (replied, sent, taken, started, cancelled)") \
    X(ESTATE, -10, "not allowed in this context")                              \
    X(ENOTFOUND, -11, "not found")                                             \
    X(EEXIST, -12, "already present")                                          \
    X(ERUNNING, -13, "still running")                                          \
    X(ERESTARTING, -14, "restarting")                                          \
    X(EFOREIGN, -15, "address belongs to another system")                      \
    X(EFORKED, -16, "system belongs to the parent process")                    \
    X(IGNORE, -17, "init declined to start")                                   \
    X(ETRUNCATED, -18, "output truncated")                                     \
    X(ENOTSUP, -19, "not supported by the target actor")                       \
    X(EFAILED, -20, "the callee failed")                                       \
    X(EBADADDR, -21, "bad network address")                                    \
    X(EADDRINUSE, -22, "address already in use")                               \
    X(EMFILE, -23, "too many open files")                                      \
    X(EIO, -24, "socket error")                                                \
    X(ESTUCK, -25, "simulation stuck: nothing can run, no timer is pending")

enum tr_error {
    TR_OK = 0,
#define X(name, val, msg) TR_##name = val,
    TR_ERROR_MAP(X)
#undef X
};

/**
 * A short description of `code` ("mailbox is full").
 *
 * Ownership: returns borrowed, valid for the life of the process.
 * Context:   any thread.
 * Returns:   the text; "unknown error" for a code not in TR_ERROR_MAP.
 */
TR_API const char *tr_strerror(int code);

/**
 * The symbolic name of `code` ("TR_EFULL").
 *
 * Ownership: returns borrowed, valid for the life of the process.
 * Context:   any thread.
 * Returns:   the name; "TR_UNKNOWN" for a code not in TR_ERROR_MAP.
 */
TR_API const char *tr_errname(int code);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_ERROR_H */
