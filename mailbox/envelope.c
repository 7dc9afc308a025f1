/* Envelope allocation: header and payload in one sized allocation. */
#include "mailbox/envelope.h"

#include "common/tr_alloc.h"

tr_envelope *
tr__env_create(uint32_t size)
{
    tr_envelope *env = tr__alloc(sizeof(*env) + size);

    if (env != NULL) {
        env->size = size;
        env->kind = 0;
        env->from = 0;
        env->gen = 0;
        env->type = 0;
    }
    return env;
}

void
tr__env_destroy(tr_envelope *env)
{
    tr__free(env, sizeof(*env) + env->size);
}
