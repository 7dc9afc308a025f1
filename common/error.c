/* Error texts and names, generated from TR_ERROR_MAP; plus tr__panic. */
#include <troupe/error.h>

#include "common/tr_assert.h"

#include <stdio.h>
#include <stdlib.h>

const char *
tr_strerror(int code)
{
    switch (code) {
    case TR_OK:
        return "success";
#define X(name, val, msg)                                                      \
    case TR_##name:                                                            \
        return msg;
        TR_ERROR_MAP(X)
#undef X
    default:
        return "unknown error";
    }
}

const char *
tr_errname(int code)
{
    switch (code) {
    case TR_OK:
        return "TR_OK";
#define X(name, val, msg)                                                      \
    case TR_##name:                                                            \
        return "TR_" #name;
        TR_ERROR_MAP(X)
#undef X
    default:
        return "TR_UNKNOWN";
    }
}

_Noreturn void
tr__panic(const char *file, int line, const char *what)
{
    fprintf(stderr, "troupe: internal error at %s:%d: %s\n", file, line, what);
    abort();
}
