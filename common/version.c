/* The version of the library that is linked. */
#include <troupe/version.h>

#define TR_STR2(x) #x
#define TR_STR(x) TR_STR2(x)

const char *
tr_version(void)
{
    return TR_STR(TR_VERSION_MAJOR) "." TR_STR(TR_VERSION_MINOR) "." TR_STR(
        TR_VERSION_PATCH);
}
