/*
 * The live endpoint in a build without libevent (TROUPE_WITH_LIBEVENT
 * off): it is not there.
 */
#include "actors/actor.h"

#include <troupe/error.h>
#include <troupe/inspect.h>

int
tr_inspect_serve(tr_system *sys, const char *addr, const tr_inspect_opts *opts,
                 uint16_t *port)
{
    (void)addr;
    (void)opts;
    (void)port;
    if (sys == NULL) {
        return TR_EINVAL;
    }
    return tr__sys_check(sys) != TR_OK ? TR_EFORKED : TR_ESTATE;
}

int
tr_inspect_stop(tr_system *sys)
{
    if (sys == NULL) {
        return TR_EINVAL;
    }
    return tr__sys_check(sys) != TR_OK ? TR_EFORKED : TR_ESTATE;
}
